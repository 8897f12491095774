"""The new-job form of the web UI: the same request the API takes, with "auto" where the engine decides."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from common.templatetags.ui_labels import LABELS, choices, label
from finetune import selectors
from finetune.engine.spec import AUTO, METHODS, TASKS
from finetune.models import Priority
from finetune.services import JobRequest

# The hyperparameters the form shows; the API takes every one the engine knows.
AUTO_FIELDS = {"n_epochs": int, "batch_size": int, "learning_rate": float, "max_length": int}
OPTIONAL_INT_FIELDS = ("eval_every_steps", "save_every_steps")
SEARCH_FIELDS = ("search", "search_trials", "search_budget_minutes")
# Shown only while the search box is ticked (static/js/forms.js, data-shown-by).
_SHOWN_BY_SEARCH = {"data-shown-by": "id_search"}


class JobForm(forms.Form):
    dataset_version = forms.ChoiceField(label=_("Dataset version"))
    model = forms.ChoiceField(label=_("Base model"))
    task = forms.ChoiceField(
        label=_("Task"), required=False, choices=[("", _("As the dataset version")), *choices("task", TASKS)]
    )
    method = forms.ChoiceField(label=_("Method"), choices=choices("method", (AUTO, *METHODS)), initial=AUTO)
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
    search = forms.BooleanField(
        label=_("Search learning rate and method first"),
        required=False,
        help_text=_(
            "Short trials on part of the data compare learning rates (and full fine-tuning with LoRA when the "
            "method is auto); the full run then trains the best one. Its time counts against the GPU-hours quota."
        ),
    )
    search_trials = forms.IntegerField(
        label=_("Search trials"),
        required=False,
        min_value=2,
        max_value=16,
        initial=4,
        widget=forms.NumberInput(attrs=_SHOWN_BY_SEARCH),
    )
    search_budget_minutes = forms.FloatField(
        label=_("Search budget (minutes)"),
        required=False,
        min_value=0.1,
        initial=10,
        help_text=_("The search stops at this time and the best trial so far wins."),
        widget=forms.NumberInput(attrs={**_SHOWN_BY_SEARCH, "step": "any"}),
    )
    device_class = forms.ChoiceField(label=_("Device class"))
    priority = forms.ChoiceField(
        label=_("Priority"), choices=choices("priority", Priority.labels), initial="normal"
    )
    suffix = forms.CharField(label=_("Model name suffix"), required=False, max_length=64)
    seed = forms.IntegerField(label=_("Seed"), initial=42, min_value=0)
    # "New job from this one": the job whose other hyperparameters (those the form does not show)
    # the new one keeps.
    from_job = forms.CharField(required=False, widget=forms.HiddenInput)

    @staticmethod
    def initial_from_job(job) -> dict:
        """The form's values for a copy of `job`'s spec (as submitted: "auto" stays "auto")."""
        hyperparameters = job.hyperparameters or {}
        initial = {
            "dataset_version": job.dataset_version_id,
            "model": job.base_model.name,
            "task": job.task,
            "method": job.method,
            "max_steps": job.max_steps,
            "device_class": job.device_class,
            "priority": job.priority_name,
            "suffix": job.suffix,
            "seed": job.seed,
            "from_job": job.id,
        }
        initial.update({name: str(hyperparameters.get(name, AUTO)) for name in AUTO_FIELDS})
        initial.update({name: hyperparameters.get(name) for name in OPTIONAL_INT_FIELDS})
        search = hyperparameters.get("search")
        if isinstance(search, dict):
            initial.update(
                search=True,
                search_trials=search.get("trials"),
                search_budget_minutes=search.get("budget_minutes"),
            )
        return initial

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        from datasets_app.models import DatasetVersion
        from workers.routing import known_device_classes

        versions = DatasetVersion.objects.filter(team=team, status="ready").select_related("dataset")
        self.fields["dataset_version"].choices = [
            (
                v.id,
                _("%(name)s v%(number)s · %(task)s · %(rows)s rows")
                % {
                    "name": v.dataset.name,
                    "number": v.number,
                    "task": label(v.task, "task"),
                    "rows": v.row_count,
                },
            )
            for v in versions
        ]
        base_models = list(selectors.base_model_list())
        self.fields["model"].choices = [(m.name, f"{m.display_name} ({m.name})") for m in base_models]
        default = next((m.name for m in base_models if m.is_default), None)
        if default:
            self.fields["model"].initial = default
        # Built-in classes in the page's language; a deployment's extra classes keep their own names.
        self.fields["device_class"].choices = [
            (code, label(code, "device") if code in LABELS["device"] else name)
            for code, name in known_device_classes().items()
        ]
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
        if data.get("search"):
            for name in ("search_trials", "search_budget_minutes"):
                if data.get(name) is None and name not in self.errors:
                    self.add_error(name, _("Required when the search is on."))
        return data

    def job_request(self, *, source=None) -> JobRequest:
        """The request the form describes; with `source` (the job it was copied from), that job's
        hyperparameters the form does not show are kept too."""
        data = self.cleaned_data
        shown = {*AUTO_FIELDS, *OPTIONAL_INT_FIELDS, *SEARCH_FIELDS}
        hyperparameters = {
            name: value
            for name, value in ((source.hyperparameters or {}) if source else {}).items()
            if name not in shown
        }
        hyperparameters.update({name: data[name] for name in AUTO_FIELDS})
        hyperparameters.update({name: data[name] for name in OPTIONAL_INT_FIELDS if data.get(name)})
        if data.get("search"):
            budget = data["search_budget_minutes"]
            hyperparameters["search"] = {
                "trials": data["search_trials"],
                "budget_minutes": int(budget) if float(budget).is_integer() else budget,
            }
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


class BaseModelForm(forms.Form):
    """Platform staff add a base model from a path the workers can read."""

    name = forms.SlugField(
        label=_("Name"), max_length=200, help_text=_("What users pass as “model”, e.g. bert-base-chinese.")
    )
    display_name = forms.CharField(label=_("Display name"), max_length=200, required=False)
    source = forms.CharField(
        label=_("Path on the workers"),
        max_length=500,
        help_text=_("A folder with config.json, the tokenizer and the weights, readable by every worker."),
    )
    kind = forms.ChoiceField(
        label=_("Kind"),
        choices=[
            ("encoder", _("Encoder (classification)")),
            ("causal_lm", _("Causal LM (chat, generation)")),
        ],
    )
    tasks = forms.MultipleChoiceField(
        label=_("Tasks"), choices=choices("task", TASKS), widget=forms.CheckboxSelectMultiple
    )
    max_length = forms.IntegerField(
        label=_("Max length (tokens)"), min_value=8, max_value=131072, initial=512
    )
    device_class = forms.ChoiceField(
        label=_("Check on device class"), help_text=_("A worker of this class loads the model to check it.")
    )
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from django.conf import settings

        from workers.routing import known_device_classes

        self.fields["device_class"].choices = [
            (code, label(code, "device") if code in LABELS["device"] else name)
            for code, name in known_device_classes().items()
        ]
        self.fields["device_class"].initial = settings.TUNEFORGE_DEFAULT_DEVICE_CLASS
