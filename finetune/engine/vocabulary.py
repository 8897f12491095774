"""The words the whole platform uses for what a job does and how it trains.

One enum each, defined here because the engine is the lowest layer that needs them and imports
nothing of the project; datasets, jobs and serving reuse these instead of string copies.
`StrEnum` members compare equal to their strings, so JSON, the database and specs keep plain text.
"""

from enum import StrEnum


class Task(StrEnum):
    CLASSIFICATION = "classification"
    MULTILABEL_CLASSIFICATION = "multilabel_classification"
    CHAT_SFT = "chat_sft"

    @property
    def is_classification(self) -> bool:
        return self is not Task.CHAT_SFT


class Method(StrEnum):
    FULL = "full"
    LORA = "lora"
    IA3 = "ia3"
    PROMPT_TUNING = "prompt_tuning"
    QLORA = "qlora"


# Methods that train an adapter with target modules and can be merged into the base.
ADAPTER_METHODS = (Method.LORA, Method.QLORA, Method.IA3)
