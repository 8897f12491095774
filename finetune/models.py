"""Fine-tuning: the base-model registry (jobs, checkpoints and model versions build on it)."""

from django.db import models

from common.models import TimeStampedModel


class BaseModel(TimeStampedModel):
    """A model that teams may fine-tune. Admins manage the registry; `name` is what the API takes."""

    class Kind(models.TextChoices):
        ENCODER = "encoder", "Encoder (classification)"
        CAUSAL_LM = "causal_lm", "Causal LM (chat, generation)"

    name = models.CharField(max_length=200, unique=True, help_text="The id users pass as `model`.")
    display_name = models.CharField(max_length=200)
    source = models.CharField(
        max_length=500, help_text="A Hugging Face id or a local path the workers can read (resolved offline)."
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    tasks = models.JSONField(default=list, help_text="Tasks this model can be tuned for.")
    max_length = models.PositiveIntegerField(default=512)
    parameters_millions = models.FloatField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True), name="one_default_base_model")
        ]

    def __str__(self) -> str:
        return self.name
