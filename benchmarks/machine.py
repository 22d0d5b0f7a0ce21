"""Helpers shared by the benchmarks: peak-memory measurement and a description of the machine.

Peak memory on CPU is the growth of the process's resident set size (RSS) over a baseline taken
after the model is built. Linux keeps a high-water mark of the RSS (VmHWM in /proc/self/status);
writing "5" to /proc/self/clear_refs resets it to the current RSS, so the peak of the measured
steps is not hidden by a larger transient peak while the model was built. Where that file is
not writable, the process's lifetime peak (ru_maxrss) is used instead, which can only
under-report the growth; the result says which method was used.
"""
import os
import platform
import resource


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(f"{field} not found in /proc/self/status")


class PeakMemory:
    """Peak memory above a baseline: CUDA allocated bytes, or CPU resident set size growth.

    Usage: ``meter = PeakMemory(device); meter.start(); ...work...; meter.peak_bytes()``.
    """

    def __init__(self, device):
        self.device = device
        self.method = None
        self.base = 0

    def start(self):
        import gc

        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            self.method = "peak allocated CUDA memory (max_memory_allocated) above the baseline"
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the RSS high-water mark to the current RSS
            self.base = _status_kib("VmRSS") * 1024
            self.method = "peak RSS growth (VmHWM after reset - VmRSS at baseline)"
        except OSError:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.method = "peak RSS growth (ru_maxrss; may under-report: /proc/self/clear_refs not writable)"

    def peak_bytes(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device) - self.base)
        if self.method.startswith("peak RSS growth (VmHWM"):
            return _status_kib("VmHWM") * 1024 - self.base
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.base


def mem_available_bytes():
    """MemAvailable from /proc/meminfo (bytes), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def describe_machine(device_type="cpu"):
    """CPU model, logical CPUs, torch threads and version, load average; the GPU name on CUDA."""
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if device_type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info
