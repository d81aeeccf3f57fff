"""Offloaded gradient checkpointing: a checkpointed decoder layer's input waits in pinned host memory for the backward.

With non-reentrant checkpointing, the only tensor autograd keeps for a checkpointed layer is the layer's input
(torch.utils.checkpoint saves it through `_NoopSaveInputs`; everything saved inside the layer goes through the
checkpoint's own hooks, which drop it for the recompute). A saved-tensors hook active around the layer's call therefore
sees exactly that input: it copies it to host memory in the forward pass and back to the device when the backward pass
recomputes the layer, so the GPU holds a layer input or two instead of all of them (Unsloth's "offloaded gradient
checkpointing"; transformers >= 5.25 has the same idea as `activation_checkpointing_enable(offload=True)`, which the
GPU image's 5.17 lacks and which graph-breaks inside compiled layers).

The hook wraps the layer's (compiled) call from the outside, through the slot `nn.Module.__call__` reads
(`_compiled_call_impl`), so torch.compile never traces it and a compiled layer's graphs stay as they were. Whether a
call offloads is decided per call: only while the layer is checkpointed (`unchecked_layers` turn it off for the last
layers), training and recording gradients.
"""
import torch

MARK = "_loraflow_offload"


class HostCopies(torch.autograd.graph.saved_tensors_hooks):
    """Saved tensors go to (pinned) host memory when packed and back to their device when unpacked; counts the bytes.

    Copies are non-blocking on the current stream: the device-to-host copy is ordered before any later kernel that
    reuses the freed GPU block, and the host-to-device copy before the recompute that reads it. Parameters are left where
    they are (a compiled graph may save its weights; moving them would copy the model every step). On the CPU the copy
    is a plain host copy: nothing is freed, the same path runs.
    """

    def __init__(self, counter: "OffloadingCall"):
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


class OffloadingCall:
    """A decoder layer's call that offloads its saved input while the layer is checkpointed."""

    def __init__(self, layer: torch.nn.Module, compiled=None):
        self.layer = layer
        self.compiled = compiled  # the layer's torch.compile'd call, if it had one
        self.bytes_offloaded = 0  # host bytes written so far (tests and logs)

    def __call__(self, *args, **kwargs):
        layer = self.layer
        call = self.compiled or layer._call_impl
        if getattr(layer, "gradient_checkpointing", False) and layer.training and torch.is_grad_enabled():
            with HostCopies(self):
                return call(*args, **kwargs)
        return call(*args, **kwargs)


def offload_checkpointed_inputs(layers: list) -> int:
    """Make each decoder layer keep its checkpointed input in host memory; returns how many layers were changed.

    Idempotent. Call it after compiling the layers (speed.compile_decoder_layers skips a layer whose call slot is
    taken): the compiled call is kept inside.
    """
    changed = 0
    for layer in layers:
        if getattr(layer, "_compiled_call_impl", None) is getattr(layer, MARK, False):
            continue  # installed (a deep copy or pickle drops the slot, as it drops compilation: installed again)
        offloading = OffloadingCall(layer, getattr(layer, "_compiled_call_impl", None))
        layer._compiled_call_impl = offloading
        setattr(layer, MARK, offloading)
        changed += 1
    return changed


def offloaded_bytes(layers: list) -> int:
    """Host bytes the layers' offloading calls have written since they were installed (0 where none is)."""
    return sum(getattr(layer, MARK).bytes_offloaded for layer in layers if isinstance(getattr(layer, MARK, None), OffloadingCall))
