"""ApiKey now belongs to accounts (its 0002 took over the model with `db_table="serving_apikey"`):
serving forgets it in state only, so the table and its rows survive."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("serving", "0001_initial"),
        ("accounts", "0002_apikey"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[migrations.DeleteModel(name="ApiKey")],
        ),
    ]
