"""Offloaded gradient checkpointing: a checkpointed decoder layer's input waits in pinned host memory for the backward.

With non-reentrant checkpointing, the only tensor autograd keeps for a checkpointed layer is the layer's input
(torch.utils.checkpoint saves it through `_NoopSaveInputs`; everything saved inside the layer goes through the
checkpoint's own hooks, which drop it for the recompute). A saved-tensors hook entered *outside* the checkpoint therefore
sees exactly that input: it copies it to host memory in the forward pass and back to the device when the backward pass
recomputes the layer, so the GPU holds a layer input or two instead of all of them (Unsloth's "offloaded gradient
checkpointing"; transformers >= 5.25 has the same idea as `activation_checkpointing_enable(offload=True)`, which the
GPU image's 5.17 lacks and which graph-breaks inside compiled layers).

Where the checkpoint sits differs by transformers version: up to 5.17 GradientCheckpointingLayer checkpoints in its
`__call__`, from 5.25 in `forward` (inside nn.Module's call, so inside a compiled layer's graph). The one place outside
the checkpoint in both, and outside torch.compile, is the layer class's `__call__`: each layer's class is swapped for a
subclass of it (same name, one per class) whose `__call__` enters the hook around the original call. A hook entered
inside the checkpoint instead would take precedence over the checkpoint's own and copy every tensor the layer saves.
Whether a call offloads is decided per call: only while the layer is checkpointed (`unchecked_layers` turn it off for
the last layers), training and recording gradients.
"""
import torch

MARK = "_loraflow_offload"
_SUBCLASSES: dict[type, type] = {}  # layer class -> its offloading subclass


class Offloaded:
    """What one layer has offloaded: host bytes written so far (tests and logs)."""

    def __init__(self):
        self.bytes_offloaded = 0


class HostCopies(torch.autograd.graph.saved_tensors_hooks):
    """Saved tensors go to (pinned) host memory when packed and back to their device when unpacked; counts the bytes.

    Copies are non-blocking on the current stream: the device-to-host copy is ordered before any later kernel that
    reuses the freed GPU block, and the host-to-device copy before the recompute that reads it. Parameters are left where
    they are (moving them would copy the model every step). On the CPU the copy is a plain host copy: nothing is freed,
    the same path runs.
    """

    def __init__(self, counter: Offloaded):
        def pack(tensor: torch.Tensor):
            if isinstance(tensor, torch.nn.Parameter):
                return None, tensor
            pinned = tensor.device.type == "cuda"
            host = torch.empty_like(tensor, device="cpu", pin_memory=pinned)
            host.copy_(tensor, non_blocking=pinned)
            counter.bytes_offloaded += host.numel() * host.element_size()
            return tensor.device, host

        def unpack(packed) -> torch.Tensor:
            device, tensor = packed
            if device is None:
                return tensor
            return tensor.to(device, non_blocking=device.type == "cuda")

        super().__init__(pack, unpack)


def _offloading_subclass(cls: type) -> type:
    """cls with a `__call__` that offloads the checkpointed input around the original call (one subclass per class)."""
    if cls not in _SUBCLASSES:
        def __call__(self, *args, **kwargs):
            counter = self.__dict__.get(MARK)
            if counter is not None and getattr(self, "gradient_checkpointing", False) and self.training \
                    and torch.is_grad_enabled():
                with HostCopies(counter):
                    return super(subclass, self).__call__(*args, **kwargs)
            return super(subclass, self).__call__(*args, **kwargs)

        subclass = type(cls.__name__, (cls,), {"__call__": __call__, "__module__": cls.__module__,
                                                "__qualname__": cls.__qualname__})
        _SUBCLASSES[cls] = subclass
        _SUBCLASSES[subclass] = subclass
    return _SUBCLASSES[cls]


def offload_checkpointed_inputs(layers: list) -> int:
    """Make each decoder layer keep its checkpointed input in host memory; returns how many layers were changed.

    Idempotent; before or after compiling the layers (the compiled call runs inside the offloading `__call__`). A deep
    copy keeps the offloading class, with a counter of its own.
    """
    changed = 0
    for layer in layers:
        if isinstance(layer.__dict__.get(MARK), Offloaded):
            continue
        layer.__class__ = _offloading_subclass(type(layer))
        layer.__dict__[MARK] = Offloaded()
        changed += 1
    return changed


def offloaded_bytes(layers: list) -> int:
    """Host bytes the layers have offloaded since offloading was installed (0 where it is not)."""
    return sum(layer.__dict__[MARK].bytes_offloaded for layer in layers if isinstance(layer.__dict__.get(MARK), Offloaded))
