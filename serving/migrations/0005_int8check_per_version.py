import django.db.models.deletion
from django.db import migrations, models


def keep_newest_per_version(apps, schema_editor):
    """Checks were per (endpoint, version); now one per (team, version): keep the newest."""
    Int8Check = apps.get_model("serving", "Int8Check")
    seen = set()
    for check in Int8Check.objects.order_by("-updated_at"):
        key = (check.team_id, check.model_version_id)
        if key in seen:
            check.delete()
        else:
            seen.add(key)


class Migration(migrations.Migration):
    dependencies = [
        ("serving", "0004_quotas_and_usage"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="int8check", name="serving_int8_per_version"),
        migrations.AlterField(
            model_name="int8check",
            name="endpoint",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="int8_checks",
                to="serving.endpoint",
            ),
        ),
        migrations.RunPython(keep_newest_per_version, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="int8check",
            constraint=models.UniqueConstraint(
                fields=("team", "model_version"), name="serving_int8_per_team_version"
            ),
        ),
    ]
