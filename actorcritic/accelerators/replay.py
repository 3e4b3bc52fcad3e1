"""Backpropagating through the forward passes made while acting, as one batch.

A2C acts T times on N envs with the same parameters, then trains on those T*N samples.
Recomputing the rollout runs every sample through the network a second time. Keeping the
autograd graph of each acting pass avoids that, but then the backward runs as T small
batches of N, and a CNN's convolution kernels are far slower per sample on batches of 16
than of 80 (on 2 cores, T=5 backward passes of 16 take longer than one forward and
backward of 80).

Replay does neither. While acting (no autograd) the CNN encoder's layers record their
outputs; in the update each layer becomes an autograd function whose forward returns the
recorded outputs of all T*N samples and whose backward is the layer's own (ReLU mask, then
the convolution's or linear layer's backward) on the whole batch. The gradient is the one
of recomputing the rollout (tests check it), for the price of the backward alone.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from actorcritic.models.actor_critic import ActorCritic, Trunk
from actorcritic.models.cores import NoCore
from actorcritic.models.encoders import NatureCNN, SmallCNN


def _layer_stack(trunk: Trunk) -> list[nn.Module] | None:
    """The encoder's Conv2d/Linear layers if it is a plain stack of them, each followed by a
    ReLU (one Flatten between convolutions and linear layers), else None. Only the built-in
    CNNs: what a user's encoder does between its layers is not known here."""
    encoder = trunk.encoder
    modules = [*getattr(encoder, "conv", ()), *getattr(encoder, "fc", ())]
    if type(encoder) not in (NatureCNN, SmallCNN) or not modules \
            or not isinstance(trunk.core, NoCore):
        return None
    layers, i = [], 0
    while i < len(modules):
        module = modules[i]
        if isinstance(module, nn.Flatten):
            i += 1
            continue
        if not (isinstance(module, (nn.Conv2d, nn.Linear)) and i + 1 < len(modules)
                and isinstance(modules[i + 1], nn.ReLU) and not modules[i + 1].inplace):
            return None
        if isinstance(module, nn.Conv2d) and (module.groups != 1 or module.dilation != (1, 1)
                                             or module.padding_mode != "zeros"):
            return None
        layers.append(module)
        i += 2
    return layers


def supports_replay(model: ActorCritic) -> bool:
    """Feedforward models whose encoders are CNN stacks (NatureCNN, SmallCNN)."""
    trunks = [t for t in (model.actor_trunk, model.critic_trunk) if t is not None]
    return all(_layer_stack(t) is not None for t in trunks)


class Recording:
    """What the encoders' layers produced while acting: per trunk, per acting step, the
    first layer's input and every layer's (ReLU) output."""

    def __init__(self, trunks: list[Trunk]):
        self.trunks = trunks
        self.steps: list[list[list[torch.Tensor]]] = [[] for _ in trunks]

    def _hooks(self, index: int, layers: list[nn.Module]) -> list:
        steps = self.steps[index]

        def first_input(module, args):
            steps.append([args[0]])

        def output(module, args, out):
            steps[-1].append(out)

        relus = _relus_after(self.trunks[index], layers)
        return ([layers[0].register_forward_pre_hook(first_input)]
                + [relu.register_forward_hook(output) for relu in relus])


def _relus_after(trunk: Trunk, layers: list[nn.Module]) -> list[nn.Module]:
    modules = [*getattr(trunk.encoder, "conv", ()), *getattr(trunk.encoder, "fc", ())]
    return [modules[modules.index(layer) + 1] for layer in layers]


@contextmanager
def recording(model: ActorCritic):
    """Record the encoders' layer outputs of every forward pass inside the block (call the
    model under torch.no_grad, not inference_mode: the update builds a graph on them)."""
    trunks = [t for t in (model.actor_trunk, model.critic_trunk) if t is not None]
    rec = Recording(trunks)
    handles = []
    try:
        for i, trunk in enumerate(trunks):
            layers = _layer_stack(trunk)
            if layers is None:
                raise ValueError("replay needs feedforward CNN encoders (NatureCNN, SmallCNN)")
            handles += rec._hooks(i, layers)
        yield rec
    finally:
        for handle in handles:
            handle.remove()


class _ReplayedReLULayer(torch.autograd.Function):
    """relu(layer(x)) whose output was recorded: forward returns it, backward is the layer's."""

    @staticmethod
    def forward(ctx, x, weight, bias, recorded, conv_args):
        ctx.save_for_backward(x, weight, recorded)
        ctx.conv_args = conv_args
        return recorded

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, recorded = ctx.saved_tensors
        # The layer ran in the recorded output's dtype (bfloat16 under autocast), so its
        # backward does too, as autocast's own backward would; gradients of the float32
        # parameters come back as float32.
        dtype = recorded.dtype
        grad_z = torch.ops.aten.threshold_backward(grad_out.to(dtype), recorded, 0)  # ReLU's
        x_low, w_low = x.to(dtype), weight.to(dtype)
        need_input = ctx.needs_input_grad[0]
        if ctx.conv_args is None:
            grad_x = (grad_z @ w_low).to(x.dtype) if need_input else None
            return (grad_x, (grad_z.t() @ x_low).to(weight.dtype),
                    grad_z.sum(0, dtype=weight.dtype), None, None)
        stride, padding = ctx.conv_args
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_z, x_low, w_low, [weight.shape[0]], stride, padding, [1, 1], False, [0, 0], 1,
            [need_input, True, True])
        grad_x = grad_x.to(x.dtype) if need_input else None
        return grad_x, grad_w.to(weight.dtype), grad_b.to(weight.dtype), None, None


def _replay_trunk(trunk: Trunk, steps: list[list[torch.Tensor]]) -> torch.Tensor:
    layers = _layer_stack(trunk)
    x = torch.cat([s[0] for s in steps])
    for i, layer in enumerate(layers):
        out = torch.cat([s[i + 1] for s in steps])
        if isinstance(layer, nn.Linear):
            x = x.flatten(1)
            conv_args = None
        else:
            conv_args = (list(layer.stride), list(layer.padding))
        x = _ReplayedReLULayer.apply(x, layer.weight, layer.bias, out, conv_args)
    return x


def replay(model: ActorCritic, rec: Recording, num_steps: int, num_envs: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Policy params [T, N, P] and values [T, N] of the recorded acting passes, attached
    to the autograd graph as if the rollout had been recomputed."""
    features = [_replay_trunk(t, s).float() for t, s in zip(rec.trunks, rec.steps)]
    params = model.policy(features[0])
    values = model.value(features[-1]).squeeze(-1)
    return params.reshape(num_steps, num_envs, -1), values.reshape(num_steps, num_envs)
