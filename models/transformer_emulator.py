"""Vision-transformer emulator with lead-time conditioning by adaptive LayerNorm (adaLN-zero, as in DiT).

input (B, C, H, W) --pad to a multiple of the patch (circular in longitude on global grids)-->
conv patch embedding (stride = patch) --+ position embedding--> tokens (B, h*w, dim)
--> depth x [adaLN -> self-attention -> gate, adaLN -> MLP -> gate], modulated by MLP(sinusoidal(lead_hours))
--> adaLN -> linear to patch*patch*n_state --> pixel shuffle --> crop the padding --> (B, n_state, H, W)

Position embedding: on global grids it depends on latitude only (the dynamics are invariant under a shift in
longitude; the forcings carry the local time), so rolling the input by a whole number of patches in longitude
rolls the output exactly. On regional grids it is a function of both coordinates. ``pos_embedding`` chooses
"learned" (default), "sinusoidal" or "none".
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.base import (
    Emulator,
    ModelConfigError,
    config_from_dict,
    is_global_grid,
    sinusoidal_embedding,
)
from models.linear import forcing_mask, linear_part
from models.registry import register_model

log = logging.getLogger(__name__)

POS_EMBEDDINGS = ("learned", "sinusoidal", "none")


@dataclasses.dataclass
class TransformerConfig:
    """Configuration of ``TransformerEmulator`` (all keys optional; defaults train fast on the UK sample)."""

    patch: int = 4  # patch size in grid points (33 x 49 pads to 36 x 52 -> 9 x 13 tokens)
    dim: int = 128  # token width
    depth: int = 4  # transformer blocks
    heads: int = 4  # attention heads (dim must be divisible by heads)
    mlp_ratio: float = 4.0  # hidden width of the block MLP, in units of dim
    pos_embedding: str = "learned"  # "learned", "sinusoidal" or "none"
    global_grid: bool | None = None  # None: detect from longitude (uniform and spanning 360 deg)
    lead_embedding_dim: int = 64  # sinusoidal features of lead_hours fed to the conditioning MLP
    linear_steps: list[float] = dataclasses.field(default_factory=list)  # residual design: the network adds
    # its output to a fitted per-grid-point regression per step size (models.linear; [] = no linear part)
    network_ignores_forcings: list[int] = dataclasses.field(default_factory=list)  # forcing channels the network
    # sees as zero (e.g. [3, 4], the day of year in the default layout: a few weeks of data only teach a trend)

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise ModelConfigError(f"transformer config: {msg}")

        if self.patch < 1 or self.dim < 1 or self.depth < 0 or self.heads < 1:
            bad(
                f"need patch >= 1, dim >= 1, depth >= 0, heads >= 1; got {self.patch}, {self.dim}, "
                f"{self.depth}, {self.heads}"
            )
        if self.dim % self.heads:
            bad(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.mlp_ratio <= 0:
            bad(f"mlp_ratio must be > 0; got {self.mlp_ratio}")
        if self.pos_embedding not in POS_EMBEDDINGS:
            bad(f"pos_embedding must be one of {', '.join(POS_EMBEDDINGS)}; got {self.pos_embedding!r}")
        if self.lead_embedding_dim < 2:
            bad(f"lead_embedding_dim must be >= 2; got {self.lead_embedding_dim}")


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    """Pre-norm transformer block whose LayerNorms are modulated and whose branches are gated by the
    conditioning vector (adaLN-zero: the modulation is initialised to zero, so each block starts as identity)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(cond).chunk(6, dim=-1)
        b, n, d = x.shape
        h = _modulate(self.norm1(x), shift1, scale1)
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + gate1[:, None] * self.proj(att)
        x = x + gate2[:, None] * self.mlp(_modulate(self.norm2(x), shift2, scale2))
        return x


def sincos_2d(rows: np.ndarray, cols: np.ndarray | None, dim: int) -> torch.Tensor:
    """Fixed sin/cos embedding (len(rows) * len(cols), dim) of two coordinates (one when ``cols`` is None)."""

    def one(pos: np.ndarray, d: int) -> np.ndarray:
        half = d // 2
        omega = 1.0 / 10000.0 ** (np.arange(half) / max(half, 1))
        out = np.concatenate([np.sin(pos[:, None] * omega), np.cos(pos[:, None] * omega)], axis=1)
        return np.pad(out, ((0, 0), (0, d - out.shape[1])))

    if cols is None:
        return torch.from_numpy(one(rows.astype(np.float64), dim).astype(np.float32))
    d_row = dim // 2
    er = one(rows.astype(np.float64), d_row)
    ec = one(cols.astype(np.float64), dim - d_row)
    grid = np.concatenate([np.repeat(er, len(cols), axis=0), np.tile(ec, (len(rows), 1))], axis=1)
    return torch.from_numpy(grid.astype(np.float32))


@register_model
class TransformerEmulator(Emulator):
    """ViT on patches of the lat/lon grid with adaLN-zero lead-time conditioning."""

    kind = "transformer"

    def __init__(
        self,
        *,
        latitude: np.ndarray,
        longitude: np.ndarray,
        n_state: int,
        n_forcing: int,
        history: int = 1,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(latitude=latitude, longitude=longitude, n_state=n_state, n_forcing=n_forcing, history=history)
        cfg = config_from_dict(TransformerConfig, config, where="transformer")
        self.config = cfg
        self.periodic = is_global_grid(self.longitude, cfg.global_grid)
        p = cfg.patch
        h, w = self.grid_shape
        self.pad_h = (-h) % p
        self.pad_w = (-w) % p
        self.tokens_h = (h + self.pad_h) // p
        self.tokens_w = (w + self.pad_w) // p
        d = cfg.dim

        self.patch_embed = nn.Conv2d(self.n_input, d, kernel_size=p, stride=p)
        # Position embedding over token rows (latitude) only on periodic grids, else over rows and columns.
        n_pos = self.tokens_h if self.periodic else self.tokens_h * self.tokens_w
        if cfg.pos_embedding == "learned":
            self.pos = nn.Parameter(torch.randn(n_pos, d) * 0.02)
        elif cfg.pos_embedding == "sinusoidal":
            cols = None if self.periodic else np.arange(self.tokens_w)
            self.register_buffer("pos", sincos_2d(np.arange(self.tokens_h), cols, d), persistent=False)
        else:
            self.pos = None

        self.lead_mlp = nn.Sequential(nn.Linear(cfg.lead_embedding_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        nn.init.zeros_(self.final_modulation[1].weight)
        nn.init.zeros_(self.final_modulation[1].bias)
        self.head = nn.Linear(d, p * p * n_state)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.register_buffer(
            "forcing_mask", forcing_mask(self.n_forcing, cfg.network_ignores_forcings), persistent=False
        )
        self.linear = linear_part(self, cfg.linear_steps, 1 if self.n_forcing >= 3 else None)
        if self.linear is not None:  # residual: start exactly at the fitted regression
            nn.init.zeros_(self.head.weight)

    def config_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self.config)
        d["linear_steps"] = [float(s) for s in d["linear_steps"]]
        return d

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """Pad (B, C, H, W) at the bottom/right to whole patches: circular in longitude on global grids,
        replicated edge values otherwise (and always in latitude)."""
        if self.pad_w:
            mode = "circular" if self.periodic else "replicate"
            x = F.pad(x, (0, self.pad_w, 0, 0), mode=mode)
        if self.pad_h:
            x = F.pad(x, (0, 0, 0, self.pad_h), mode="replicate")
        return x

    def forward(self, state: torch.Tensor, forcings: torch.Tensor, lead_hours: torch.Tensor) -> torch.Tensor:
        self.check_inputs(state, forcings, lead_hours)
        b, _, h, w = state.shape
        p, th, tw = self.config.patch, self.tokens_h, self.tokens_w
        x = self._pad(torch.cat([state, self.forcing_mask.to(forcings) * forcings], dim=1))
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, th*tw, dim)
        if self.pos is not None:
            pos = self.pos.to(tokens.dtype)
            if self.periodic:
                pos = pos.repeat_interleave(tw, dim=0)  # same for every token column
            tokens = tokens + pos[None]
        # Lead time in hours; periods from 2*pi hours to ~2*pi*1000 days.
        cond = self.lead_mlp(
            sinusoidal_embedding(lead_hours, self.config.lead_embedding_dim, max_period=24000.0).to(tokens.dtype)
        )
        for block in self.blocks:
            tokens = block(tokens, cond)
        shift, scale = self.final_modulation(cond).chunk(2, dim=-1)
        out = self.head(_modulate(self.final_norm(tokens), shift, scale))  # (B, th*tw, p*p*n_state)
        out = out.transpose(1, 2).reshape(b, self.n_state * p * p, th, tw)
        out = F.pixel_shuffle(out, p)[:, :, :h, :w]  # (B, n_state, H, W)
        return out if self.linear is None else out + self.linear(state, forcings, lead_hours)
