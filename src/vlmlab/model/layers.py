"""Layers shared by the connectors and the cross-attention blocks: the gated and plain MLPs, the norm epsilon."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-6  # RMSNorm epsilon, as Idefics2's rms_norm_eps


# Reference: transformers models/idefics2/modeling_idefics2.py, Idefics2MLP (act = silu, as Mistral's).
class SwiGLU(nn.Module):
    """fc_down(silu(fc_gate(x)) * fc_up(x)): d_in -> d_out through a gated hidden layer of d_hidden."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.fc_gate = nn.Linear(d_in, d_hidden, bias=False)
        self.fc_up = nn.Linear(d_in, d_hidden, bias=False)
        self.fc_down = nn.Linear(d_hidden, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_down(F.silu(self.fc_gate(x)) * self.fc_up(x))  # (..., d_out)


# Reference: transformers models/idefics/perceiver.py, IdeficsMLP (fc, ReLU, c_proj; no bias).
class ReLUMLP(nn.Module):
    """fc_down(relu(fc_up(x))): d_in -> d_out through a hidden layer of d_hidden (Idefics1's perceiver MLP)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.fc_up = nn.Linear(d_in, d_hidden, bias=False)
        self.fc_down = nn.Linear(d_hidden, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_down(F.relu(self.fc_up(x)))  # (..., d_out)


MLPS = {"swiglu": SwiGLU, "relu": ReLUMLP}  # by the names the config uses
