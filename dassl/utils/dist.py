"""torch.distributed helpers; every function also works in a plain single process.

The engine calls ``init_distributed_from_env`` once (in SimpleTrainer): under torchrun
(WORLD_SIZE > 1 in the environment) it initialises the default process group, with
NCCL on CUDA and Gloo on CPU. Everything else asks ``get_world_size()``/``get_rank()``.
"""

import os

import torch
import torch.distributed as dist

__all__ = [
    "is_dist_initialized",
    "get_world_size",
    "get_rank",
    "get_local_rank",
    "is_main_process",
    "init_distributed_from_env",
    "barrier",
    "all_gather_object",
    "gather_object",
    "all_gather_tensor",
    "broadcast_object",
    "average_gradients",
]


def is_dist_initialized():
    return dist.is_available() and dist.is_initialized()


def get_world_size():
    return dist.get_world_size() if is_dist_initialized() else 1


def get_rank():
    return dist.get_rank() if is_dist_initialized() else 0


def get_local_rank():
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process():
    """Rank 0 (or the only process): the one that writes logs, checkpoints, tensorboard."""
    return get_rank() == 0


def init_distributed_from_env(use_cuda=True):
    """Join the process group described by torchrun's env vars; no-op when WORLD_SIZE <= 1.

    Returns True when running distributed.
    """
    if is_dist_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support.")
    on_cuda = use_cuda and torch.cuda.is_available()
    if on_cuda:
        torch.cuda.set_device(get_local_rank())
    dist.init_process_group(backend="nccl" if on_cuda else "gloo")
    return True


def barrier():
    if is_dist_initialized():
        dist.barrier()


def all_gather_object(obj):
    """List with one entry per rank (``[obj]`` single-process)."""
    if not is_dist_initialized():
        return [obj]
    gathered = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def gather_object(obj, dst=0):
    """On rank ``dst``: list with one entry per rank (``[obj]`` single-process); None on the others.

    Unlike ``all_gather_object``, only ``dst`` receives the data (large payloads such as the
    logits of a whole split are not copied to every rank).
    """
    if not is_dist_initialized():
        return [obj]
    gathered = [None] * get_world_size() if get_rank() == dst else None
    dist.gather_object(obj, gathered, dst=dst)
    return gathered


def all_gather_tensor(tensor):
    """Concatenate along dim 0 the tensors of every rank; their first dims may differ."""
    if not is_dist_initialized():
        return tensor
    # Variable sizes: go through the object collective, which handles any length.
    parts = all_gather_object(tensor.detach().cpu())
    return torch.cat(parts, dim=0).to(tensor.device)


def broadcast_object(obj, src=0):
    """``obj`` from rank ``src`` on every rank."""
    if not is_dist_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def average_gradients(params):
    """All-reduce and average ``.grad`` of ``params`` across ranks (no-op single-process).

    Lets any trainer train under torchrun without wrapping its modules in
    DistributedDataParallel: the engine calls this before every optimizer step.
    """
    world_size = get_world_size()
    if world_size <= 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n
