"""Tuneforge inference runtime: a pure library (no Django), like finetune.engine.

rt = ServingRuntime(resolve_base=finetune.engine.resolve_base_model, cache_mb=2048)
rt.classify("/models/v3", ["my card was declined"])        # -> [Classification]
rt.generate("/models/chat-v1", [{"role": "user", "content": "hi"}], max_tokens=32, seed=1)
for chunk in rt.stream(...): ...                              # text deltas, then finish_reason
"""

from .artifact import ArtifactInfo, read_artifact
from .batching import MicroBatcher
from .cache import CacheStats, ModelCache
from .classify import REFUSE, TRUNCATE, Classification, classify_direct
from .errors import ArtifactError, InputTooLong, InvalidRequest, RuntimeServingError
from .generate import Choice, Generation, GenerationParams, StreamChunk, generate, stream
from .loading import LoadedModel, quantize_int8
from .observer import CACHE_EVENTS, CudaMemory, RuntimeObserver, cuda_memory
from .quantization import QuantizationReport, measure_int8_change
from .runtime import ServingRuntime

__all__ = [
    "CACHE_EVENTS",
    "REFUSE",
    "TRUNCATE",
    "ArtifactError",
    "ArtifactInfo",
    "CacheStats",
    "Choice",
    "Classification",
    "CudaMemory",
    "Generation",
    "GenerationParams",
    "InputTooLong",
    "InvalidRequest",
    "LoadedModel",
    "MicroBatcher",
    "ModelCache",
    "QuantizationReport",
    "RuntimeObserver",
    "RuntimeServingError",
    "ServingRuntime",
    "StreamChunk",
    "classify_direct",
    "cuda_memory",
    "generate",
    "measure_int8_change",
    "quantize_int8",
    "read_artifact",
    "stream",
]
