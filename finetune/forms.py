"""The new-job form of the web UI: the same request the API takes, with "auto" where the engine decides."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from finetune import selectors
from finetune.engine.spec import AUTO, METHODS, TASKS
from finetune.models import Priority
from finetune.services import JobRequest

# The hyperparameters the form shows; the API takes every one the engine knows.
AUTO_FIELDS = {"n_epochs": int, "batch_size": int, "learning_rate": float, "max_length": int}
OPTIONAL_INT_FIELDS = ("eval_every_steps", "save_every_steps")


class JobForm(forms.Form):
    dataset_version = forms.ChoiceField(label=_("Dataset version"))
    model = forms.ChoiceField(label=_("Base model"))
    task = forms.ChoiceField(
        label=_("Task"), required=False, choices=[("", _("As the dataset version"))] + [(t, t) for t in TASKS]
    )
    method = forms.ChoiceField(label=_("Method"), choices=[(m, m) for m in (AUTO, *METHODS)], initial=AUTO)
    n_epochs = forms.CharField(label=_("Epochs"), initial=AUTO)
    batch_size = forms.CharField(label=_("Batch size"), initial=AUTO)
    learning_rate = forms.CharField(label=_("Learning rate"), initial=AUTO)
    max_length = forms.CharField(label=_("Max length (tokens)"), initial=AUTO)
    eval_every_steps = forms.IntegerField(
        label=_("Evaluate every N steps"), required=False, min_value=1, help_text=_("Empty: once per epoch.")
    )
    save_every_steps = forms.IntegerField(
        label=_("Checkpoint every N steps"),
        required=False,
        min_value=1,
        help_text=_("Empty: once per epoch."),
    )
    max_steps = forms.IntegerField(
        label=_("Max steps"), required=False, min_value=1, help_text=_("Empty: run every epoch.")
    )
    device_class = forms.ChoiceField(label=_("Device class"))
    priority = forms.ChoiceField(
        label=_("Priority"), choices=[(p, p) for p in Priority.labels], initial="normal"
    )
    suffix = forms.CharField(label=_("Model name suffix"), required=False, max_length=64)
    seed = forms.IntegerField(label=_("Seed"), initial=42, min_value=0)

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        from datasets_app.models import DatasetVersion
        from workers.routing import known_device_classes

        versions = DatasetVersion.objects.filter(team=team, status="ready").select_related("dataset")
        self.fields["dataset_version"].choices = [
            (
                v.id,
                _("%(name)s v%(number)s · %(task)s · %(rows)s rows")
                % {"name": v.dataset.name, "number": v.number, "task": v.task, "rows": v.row_count},
            )
            for v in versions
        ]
        base_models = list(selectors.base_model_list())
        self.fields["model"].choices = [(m.name, f"{m.display_name} ({m.name})") for m in base_models]
        default = next((m.name for m in base_models if m.is_default), None)
        if default:
            self.fields["model"].initial = default
        self.fields["device_class"].choices = list(known_device_classes().items())
        from django.conf import settings

        self.fields["device_class"].initial = settings.TUNEFORGE_DEFAULT_DEVICE_CLASS

    def clean(self):
        data = super().clean()
        for name, kind in AUTO_FIELDS.items():
            raw = (data.get(name) or AUTO).strip()
            if raw == AUTO:
                data[name] = AUTO
                continue
            try:
                data[name] = kind(raw)
            except ValueError:
                self.add_error(name, _('Enter "auto" or a number.'))
        return data

    def job_request(self) -> JobRequest:
        data = self.cleaned_data
        hyperparameters = {name: data[name] for name in AUTO_FIELDS}
        hyperparameters.update({name: data[name] for name in OPTIONAL_INT_FIELDS if data.get(name)})
        return JobRequest(
            dataset_version=data["dataset_version"],
            model=data["model"],
            task=data.get("task") or None,
            method=data["method"],
            hyperparameters=hyperparameters,
            device_class=data["device_class"],
            priority=data["priority"],
            suffix=data.get("suffix") or "",
            seed=data["seed"],
            max_steps=data.get("max_steps"),
        )
