"""Message-passing building blocks in pure PyTorch (no torch_geometric): MLPs, sum aggregation over edges and
the interaction network layer of GraphCast's encoder / processor / decoder.

Node latents are batched as (B, N, D); a graph is (senders, receivers) int64 index tensors shared by the whole
batch, so a batch needs no graph concatenation. Aggregation sums messages into receivers with
``Tensor.index_add_`` (default) or ``Tensor.scatter_reduce_`` — ``benchmarks/train_step.py`` times both.
"""

from __future__ import annotations

import torch
from torch import nn

AGGREGATIONS = ("index_add", "scatter_reduce")


class MLP(nn.Module):
    """Linear -> SiLU -> Linear [-> LayerNorm]: the MLP of every encoder, processor and decoder update."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, *, layer_norm: bool = True) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_hidden), nn.SiLU(), nn.Linear(d_hidden, d_out))
        self.norm = nn.LayerNorm(d_out) if layer_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.net(x))


def aggregate_sum(
    messages: torch.Tensor, receivers: torch.Tensor, n_receivers: int, method: str = "index_add"
) -> torch.Tensor:
    """Sum ``messages`` (B, E, D) into their receivers: returns (B, n_receivers, D)."""
    b, _, d = messages.shape
    out = messages.new_zeros((b, n_receivers, d))
    if method == "index_add":
        return out.index_add_(1, receivers, messages)
    if method == "scatter_reduce":
        index = receivers.view(1, -1, 1).expand_as(messages)
        return out.scatter_reduce_(1, index, messages, reduce="sum", include_self=True)
    raise ValueError(f"unknown aggregation {method!r}; choose one of {', '.join(AGGREGATIONS)}")


class EdgeMLP(nn.Module):
    """MLP of the concatenation [edge, x_sender, x_receiver], evaluated without building the concatenation.

    The first layer is split, W [e, s, r] = W_e e + W_s s + W_r r, and W_s, W_r are applied to the node
    latents before gathering them onto the edges: the node sets are 2-10x smaller than the edge sets, so this
    saves two thirds of the first layer's FLOPs and the (B, E, 3D) concatenation.
    """

    def __init__(self, d_latent: int, d_hidden: int) -> None:
        super().__init__()
        self.lin_edge = nn.Linear(d_latent, d_hidden)
        self.lin_send = nn.Linear(d_latent, d_hidden, bias=False)
        self.lin_recv = nn.Linear(d_latent, d_hidden, bias=False)
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(d_hidden, d_latent), nn.LayerNorm(d_latent))

    def forward(
        self,
        edges: torch.Tensor,
        x_send: torch.Tensor,
        x_recv: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
    ) -> torch.Tensor:
        h = (
            self.lin_edge(edges)
            + torch.index_select(self.lin_send(x_send), 1, senders)
            + torch.index_select(self.lin_recv(x_recv), 1, receivers)
        )
        return self.out(h)


class InteractionNetwork(nn.Module):
    """One message-passing step with residual updates (GraphCast's InteractionNetwork).

    edge' = edge + MLP_e([edge, x_sender, x_receiver]);  x_r' = x_r + MLP_n([x_r, sum_{edges->r} edge'])
    Sender and receiver node sets may differ (bipartite grid->mesh, mesh->grid) or be the same (mesh->mesh).
    """

    def __init__(self, d_latent: int, d_hidden: int | None = None, *, aggregation: str = "index_add") -> None:
        super().__init__()
        d_hidden = d_hidden or d_latent
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {', '.join(AGGREGATIONS)}")
        self.edge_mlp = EdgeMLP(d_latent, d_hidden)
        self.node_mlp = MLP(2 * d_latent, d_hidden, d_latent)
        self.aggregation = aggregation

    def forward(
        self,
        x_send: torch.Tensor,
        x_recv: torch.Tensor,
        edges: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_send (B, Ns, D), x_recv (B, Nr, D), edges (B or 1, E, D) -> (new x_recv, new edges (B, E, D))."""
        edges = edges + self.edge_mlp(edges, x_send, x_recv, senders, receivers)
        agg = aggregate_sum(edges, receivers, x_recv.shape[1], self.aggregation)
        x_recv = x_recv + self.node_mlp(torch.cat([x_recv, agg], dim=-1))
        return x_recv, edges
