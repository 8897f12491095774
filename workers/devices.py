"""What hardware a worker runs on, and how busy it is. No Django here: the GPU launcher uses it too.

GPU names and memory come from NVML (nvidia-ml-py), which reads them without creating a CUDA
context, so detection is safe before forking; torch is the fallback where NVML is missing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from workers.routing import DEVICE_CLASS_FORMAT, device_class_for_name

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEVICE_CLASS_ENV = "TUNEFORGE_DEVICE_CLASS"


@dataclass(frozen=True)
class GpuDevice:
    """One GPU as the launcher sees it. `visible_id` is what a child's CUDA_VISIBLE_DEVICES must be
    to see exactly this GPU (a physical index or a "GPU-<uuid>")."""

    index: int
    visible_id: str
    name: str
    memory_mb: int | None = None


def device_class_for(device_name: str, *, override: str | None = None) -> str:
    """The class a GPU worker routes under: TUNEFORGE_DEVICE_CLASS when set (e.g. to group
    "NVIDIA H100 NVL" and "NVIDIA H100 PCIe" under one name), otherwise derived from the name."""
    if override:
        if not DEVICE_CLASS_FORMAT.match(override):
            raise ValueError(
                f"{DEVICE_CLASS_ENV}={override!r} is not a valid device class: use lowercase letters, digits, "
                "'-' or '_' (e.g. h200)"
            )
        return override
    return device_class_for_name(device_name)


def parse_visible_devices(raw: str | None) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES as a list; None when unset (every GPU is visible)."""
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def _decode(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Nvml:
    """A thin, failure-tolerant use of NVML: every call returns None when NVML is unavailable."""

    def __init__(self) -> None:
        self.available = False
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as exc:  # no driver, no library, or no permission: all mean "no NVML"
            log.debug("NVML unavailable: %s", exc)
            return
        self._nvml = pynvml
        self.available = True

    def handle(self, visible_id: str):
        if not self.available:
            return None
        try:
            if visible_id.isdigit():
                return self._nvml.nvmlDeviceGetHandleByIndex(int(visible_id))
            return self._nvml.nvmlDeviceGetHandleByUUID(visible_id)
        except Exception as exc:
            log.warning("NVML has no device %r: %s", visible_id, exc)
            return None

    def name_and_memory(self, handle) -> tuple[str, int] | None:
        try:
            return (
                _decode(self._nvml.nvmlDeviceGetName(handle)),
                int(self._nvml.nvmlDeviceGetMemoryInfo(handle).total // MIB),
            )
        except Exception as exc:
            log.warning("NVML could not describe a device: %s", exc)
            return None

    def utilisation(self, handle) -> dict | None:
        try:
            rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
        except Exception as exc:
            log.warning("NVML could not read utilisation: %s", exc)
            return None
        return {
            "gpu_percent": int(rates.gpu),
            "memory_used_mb": int(memory.used // MIB),
            "memory_total_mb": int(memory.total // MIB),
        }


def detect_gpus() -> list[GpuDevice]:
    """The GPUs this machine lets us use: torch's count (which honours CUDA_VISIBLE_DEVICES),
    names and memory from NVML, falling back to torch's device properties."""
    # NVML numbers GPUs in PCI bus order; make CUDA agree, so index i is the same GPU for both.
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    try:
        import torch
    except ImportError:
        return []
    count = torch.cuda.device_count()
    if count == 0:
        return []
    visible = parse_visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"))
    nvml = Nvml()
    devices = []
    for index in range(count):
        visible_id = visible[index] if visible and index < len(visible) else str(index)
        described = None
        handle = nvml.handle(visible_id)
        if handle is not None:
            described = nvml.name_and_memory(handle)
        if described is None:
            props = torch.cuda.get_device_properties(index)
            described = (props.name, int(props.total_memory // MIB))
        devices.append(
            GpuDevice(index=index, visible_id=visible_id, name=described[0], memory_mb=described[1])
        )
    return devices


def software_versions() -> tuple[str, str]:
    """(torch version, CUDA version torch was built with); "" where unknown (CPU-only builds have no CUDA)."""
    try:
        import torch
    except ImportError:
        return "", ""
    return str(torch.__version__), str(torch.version.cuda or "")


class UtilisationSampler:
    """How busy this worker's device is: NVML figures for its GPU when present, else CPU percent
    and resident memory of the worker process and its children (prefork pools run tasks there)."""

    def __init__(self, *, gpu_visible_id: str | None) -> None:
        self._nvml_handle = None
        if gpu_visible_id is not None:
            nvml = Nvml()
            handle = nvml.handle(gpu_visible_id)
            if handle is not None:
                self._nvml, self._nvml_handle = nvml, handle
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        self._children: dict[int, object] = {}
        self._process.cpu_percent(interval=None)  # the first reading only starts the clock

    def sample(self) -> dict:
        if self._nvml_handle is not None:
            figures = self._nvml.utilisation(self._nvml_handle)
            if figures is not None:
                return figures
        return self._cpu_sample()

    def _cpu_sample(self) -> dict:
        psutil = self._psutil
        cpu = self._process.cpu_percent(interval=None)
        rss = self._process.memory_info().rss
        alive = {}
        for child in self._process.children(recursive=True):
            known = self._children.get(child.pid, child)
            try:
                cpu += known.cpu_percent(interval=None)
                rss += known.memory_info().rss
            except psutil.Error:
                continue
            alive[child.pid] = known
        self._children = alive
        return {
            "cpu_percent": round(cpu, 1),
            "rss_mb": int(rss // MIB),
            "memory_total_mb": int(psutil.virtual_memory().total // MIB),
        }


@dataclass(frozen=True)
class DeviceDescription:
    device_kind: str  # "cpu" | "cuda"
    device_name: str
    device_memory_mb: int | None
    device_class: str
    gpu_visible_id: str | None


def describe_this_worker_device() -> DeviceDescription:
    """The device this worker process trains on: the first GPU it can see (the launcher gives each
    worker exactly one), else the CPU."""
    visible = parse_visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"))
    override = os.environ.get(DEVICE_CLASS_ENV) or None
    if visible == []:
        return _cpu_description()
    visible_id = visible[0] if visible else "0"
    nvml = Nvml()
    handle = nvml.handle(visible_id) if nvml.available else None
    described = nvml.name_and_memory(handle) if handle is not None else None
    if described is None:
        described = _torch_gpu_description()
    if described is None:
        return _cpu_description()
    name, memory_mb = described
    return DeviceDescription(
        device_kind="cuda",
        device_name=name,
        device_memory_mb=memory_mb,
        device_class=device_class_for(name, override=override),
        gpu_visible_id=visible_id,
    )


def _torch_gpu_description() -> tuple[str, int] | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return props.name, int(props.total_memory // MIB)


def _cpu_description() -> DeviceDescription:
    import psutil

    return DeviceDescription(
        device_kind="cpu",
        device_name=f"{_cpu_model_name()} ({psutil.cpu_count() or '?'} cores)",
        device_memory_mb=int(psutil.virtual_memory().total // MIB),
        device_class="cpu",
        gpu_visible_id=None,
    )


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform as stdlib_platform

    return stdlib_platform.processor() or stdlib_platform.machine() or "CPU"
