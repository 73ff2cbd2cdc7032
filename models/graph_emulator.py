"""GraphCast-style encode-process-decode emulator on an icosahedral multi-mesh (pure PyTorch).

grid nodes --(grid2mesh: grid points within a radius of each mesh node)--> multi-mesh nodes
          --(N interaction-network layers over the edges of all refinement levels)--> multi-mesh nodes
          --(mesh2grid: each grid point from the 3 vertices of its containing triangle)--> grid nodes
          --> MLP --> delta

Regional grids keep only the mesh nodes inside a margin around the domain's latitude/longitude box (and the
multi-mesh edges between them); periodic grids that stop short of the poles keep the latitude band. The refinement
level comes from ``mesh_level``, else from
``mesh_resolution_deg``, else from twice the grid spacing: the UK sample (0.25 deg, 33 x 49) gets level 7
(~0.5 deg) and ~300 mesh nodes; a global 1.5 deg grid gets level 5 (10242 nodes).

The graph (indices and geometric features) is built once per (grid, graph options), cached in-process and
optionally on disk as .npz (``graph_cache_dir`` or ``$WXEMU_GRAPH_CACHE_DIR``), and held in non-persistent
buffers: ``state_dict`` carries only weights.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from models import grid_mesh_connectivity as gmc
from models import icosahedral_mesh as icm
from models.base import (
    Emulator,
    ModelConfigError,
    config_from_dict,
    is_global_grid,
    sinusoidal_embedding,
)
from models.graph_net import AGGREGATIONS, MLP, InteractionNetwork
from models.linear import forcing_mask, linear_part
from models.registry import register_model

log = logging.getLogger(__name__)

GRAPH_CACHE_ENV = "WXEMU_GRAPH_CACHE_DIR"
MESH2GRID = ("triangle", "nearest")


@dataclasses.dataclass
class GraphConfig:
    """Configuration of ``GraphEmulator`` (all keys optional; the defaults train fast on the UK sample)."""

    latent: int = 48  # width of node and edge latents
    hidden: int | None = None  # hidden width of the MLPs (None: = latent)
    processor_layers: int = 4  # message-passing layers on the multi-mesh
    mesh_level: int | None = None  # icosahedral refinement level (overrides the two below)
    mesh_resolution_deg: float | None = None  # target mesh spacing (None: 2 x grid spacing)
    max_mesh_level: int = 7  # cap of the automatic level choice
    grid2mesh_radius_factor: float = 0.6  # grid2mesh radius, in units of the finest level's longest edge
    mesh2grid: str = "triangle"  # "triangle": from the 3 vertices of the containing finest triangle;
    # "nearest": from the mesh2grid_k nearest mesh nodes
    mesh2grid_k: int = 3  # k of "nearest", and the fallback outside a regional mesh
    region_margin_factor: float = 1.0  # regional grids: margin around the box, in grid2mesh radii
    global_grid: bool | None = None  # None: detect from longitude (uniform and spanning 360 deg)
    aggregation: str = "index_add"  # "index_add" or "scatter_reduce"
    lead_conditioning: bool = True  # add an embedding of lead_hours to the grid latents
    graph_cache_dir: str | None = None  # on-disk .npz graph cache (None: $WXEMU_GRAPH_CACHE_DIR or none)
    linear_steps: list[float] = dataclasses.field(default_factory=list)  # residual design: the network adds
    # its output to a fitted per-grid-point regression per step size (models.linear; [] = no linear part)
    network_ignores_forcings: list[int] = dataclasses.field(default_factory=list)  # forcing channels the network
    # sees as zero (e.g. [3, 4], the day of year in the default layout: a few weeks of data only teach a trend)

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise ModelConfigError(f"graph config: {msg}")

        if self.latent < 1:
            bad(f"latent must be >= 1; got {self.latent}")
        if self.hidden is not None and self.hidden < 1:
            bad(f"hidden must be >= 1; got {self.hidden}")
        if self.processor_layers < 0:
            bad(f"processor_layers must be >= 0; got {self.processor_layers}")
        if self.mesh_level is not None and not 0 <= self.mesh_level <= 9:
            bad(f"mesh_level must be in 0..9; got {self.mesh_level}")
        if self.mesh_resolution_deg is not None and self.mesh_resolution_deg <= 0:
            bad(f"mesh_resolution_deg must be > 0; got {self.mesh_resolution_deg}")
        if not 0 <= self.max_mesh_level <= 9:
            bad(f"max_mesh_level must be in 0..9; got {self.max_mesh_level}")
        if self.grid2mesh_radius_factor <= 0 or self.mesh2grid_k < 1 or self.region_margin_factor < 0:
            bad("grid2mesh_radius_factor must be > 0, mesh2grid_k >= 1, region_margin_factor >= 0")
        if self.mesh2grid not in MESH2GRID:
            bad(f"mesh2grid must be one of {', '.join(MESH2GRID)}; got {self.mesh2grid!r}")
        if self.aggregation not in AGGREGATIONS:
            bad(f"aggregation must be one of {', '.join(AGGREGATIONS)}; got {self.aggregation!r}")


class GridMeshGraph(NamedTuple):
    """The three graphs of the emulator with their features; all numpy. Grid nodes are row-major (lat, lon)."""

    mesh_level: int
    mesh_xyz: np.ndarray  # (M, 3) float64 unit vectors of the kept mesh nodes
    grid_node_features: np.ndarray  # (H*W, 3) float32
    mesh_node_features: np.ndarray  # (M, 3) float32
    mesh_senders: np.ndarray  # (E_m,) int64 multi-mesh edges (all levels, deduplicated)
    mesh_receivers: np.ndarray
    mesh_edge_features: np.ndarray  # (E_m, 4) float32
    g2m_senders: np.ndarray  # grid indices
    g2m_receivers: np.ndarray  # mesh indices
    g2m_edge_features: np.ndarray
    m2g_senders: np.ndarray  # mesh indices
    m2g_receivers: np.ndarray  # grid indices
    m2g_edge_features: np.ndarray


def choose_mesh_level(
    latitude: np.ndarray,
    longitude: np.ndarray,
    *,
    mesh_level: int | None = None,
    mesh_resolution_deg: float | None = None,
    max_mesh_level: int = 7,
) -> int:
    """The refinement level: ``mesh_level`` if given, else the level whose shortest edge is no longer than
    ``mesh_resolution_deg`` (default twice the mean grid spacing), capped at ``max_mesh_level``."""
    if mesh_level is not None:
        return int(mesh_level)
    if mesh_resolution_deg is None:
        spacing = 0.5 * (float(np.mean(np.diff(latitude))) + float(np.mean(np.diff(longitude))))
        mesh_resolution_deg = 2.0 * spacing
    return icm.level_for_resolution(mesh_resolution_deg, max_level=max_mesh_level)


def build_grid_mesh_graph(
    latitude: np.ndarray,
    longitude: np.ndarray,
    *,
    mesh_level: int,
    global_grid: bool,
    radius_factor: float = 0.6,
    mesh2grid: str = "triangle",
    mesh2grid_k: int = 3,
    region_margin_factor: float = 1.0,
) -> GridMeshGraph:
    """Build the grid2mesh, multi-mesh and mesh2grid graphs for a latitude/longitude grid (degrees)."""
    lat = np.asarray(latitude, dtype=np.float64)
    lon = np.asarray(longitude, dtype=np.float64)
    meshes = icm.get_hierarchy_of_meshes(mesh_level)
    finest = meshes[-1]
    fs, fr = icm.faces_to_edges(finest.faces)
    radius_deg = radius_factor * float(icm.edge_angles_deg(finest.vertices, fs, fr).max())

    n_vert = len(finest.vertices)
    # Keep the mesh nodes within a margin of the grid's box; a periodic grid spans all longitudes, and a
    # global grid reaching both poles keeps every node.
    vlat, vlon = icm.cartesian_to_lat_lon(finest.vertices)
    keep = icm.in_lat_lon_box(
        vlat,
        vlon,
        lat_min=lat[0],
        lat_max=lat[-1],
        lon_min=lon[0],
        lon_max=lon[0] + 360.0 if global_grid else lon[-1],
        margin_deg=region_margin_factor * radius_deg,
    )
    # Multi-mesh: directed edges of every level, restricted to kept nodes, deduplicated.
    s_all, r_all = [], []
    for m in meshes:
        f = m.faces
        s_all.append(np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]]))
        r_all.append(np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]]))
    s_cat, r_cat = np.concatenate(s_all), np.concatenate(r_all)
    both = keep[s_cat] & keep[r_cat]
    key = np.unique(r_cat[both] * n_vert + s_cat[both])
    old, ms, mr = icm.restrict_to_nodes(keep, key % n_vert, key // n_vert)
    if old.size == 0:
        raise ModelConfigError(
            f"graph emulator: no mesh node of level {mesh_level} lies in the grid's domain; "
            "raise mesh_level or lower mesh_resolution_deg"
        )
    mesh_xyz = finest.vertices[old]
    grid_xyz = gmc.grid_positions(lat, lon)

    g2m_s, g2m_r = gmc.radius_query_edges(grid_xyz, mesh_xyz, radius_deg)
    if mesh2grid == "triangle":
        # Finest-level triangles whose three vertices were kept, renumbered to the kept nodes.
        new_index = np.full(n_vert, -1, dtype=np.int64)
        new_index[old] = np.arange(old.size)
        faces = new_index[finest.faces]
        faces = faces[(faces >= 0).all(axis=1)]
        m2g_s, m2g_r = gmc.containing_triangle_edges(mesh_xyz, faces, grid_xyz, fallback_k=mesh2grid_k)
    elif mesh2grid == "nearest":
        m2g_s, m2g_r = gmc.nearest_nodes_edges(mesh_xyz, grid_xyz, k=mesh2grid_k)
    else:
        raise ValueError(f"unknown mesh2grid {mesh2grid!r}; choose one of {', '.join(MESH2GRID)}")
    return GridMeshGraph(
        mesh_level=int(mesh_level),
        mesh_xyz=mesh_xyz,
        grid_node_features=gmc.node_features(grid_xyz),
        mesh_node_features=gmc.node_features(mesh_xyz),
        mesh_senders=ms,
        mesh_receivers=mr,
        mesh_edge_features=gmc.edge_features(mesh_xyz, mesh_xyz, ms, mr),
        g2m_senders=g2m_s,
        g2m_receivers=g2m_r,
        g2m_edge_features=gmc.edge_features(grid_xyz, mesh_xyz, g2m_s, g2m_r),
        m2g_senders=m2g_s,
        m2g_receivers=m2g_r,
        m2g_edge_features=gmc.edge_features(mesh_xyz, grid_xyz, m2g_s, m2g_r),
    )


def _graph_key(lat: np.ndarray, lon: np.ndarray, options: tuple) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(lat, dtype=np.float64).tobytes())
    h.update(b"|")
    h.update(np.ascontiguousarray(lon, dtype=np.float64).tobytes())
    h.update(repr(options).encode())
    return h.hexdigest()[:24]


@functools.lru_cache(maxsize=16)
def _cached_graph(lat_bytes: bytes, lon_bytes: bytes, options: tuple, cache_dir: str | None) -> GridMeshGraph:
    lat = np.frombuffer(lat_bytes, dtype=np.float64)
    lon = np.frombuffer(lon_bytes, dtype=np.float64)
    mesh_level, global_grid, radius_factor, m2g, k, margin = options
    path = None
    if cache_dir:
        path = Path(cache_dir) / f"wxemu-graph-{_graph_key(lat, lon, options)}.npz"
        if path.exists():
            with np.load(path) as z:
                fields = {name: z[name] for name in GridMeshGraph._fields if name != "mesh_level"}
                return GridMeshGraph(mesh_level=int(z["mesh_level"]), **fields)
    graph = build_grid_mesh_graph(
        lat,
        lon,
        mesh_level=mesh_level,
        global_grid=global_grid,
        radius_factor=radius_factor,
        mesh2grid=m2g,
        mesh2grid_k=k,
        region_margin_factor=margin,
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **graph._asdict())
        os.replace(tmp, path)
    return graph


def get_graph(latitude: np.ndarray, longitude: np.ndarray, config: GraphConfig) -> GridMeshGraph:
    """The graph for this grid and config, from the in-process cache, the on-disk cache or built anew."""
    lat = np.ascontiguousarray(latitude, dtype=np.float64)
    lon = np.ascontiguousarray(longitude, dtype=np.float64)
    level = choose_mesh_level(
        lat,
        lon,
        mesh_level=config.mesh_level,
        mesh_resolution_deg=config.mesh_resolution_deg,
        max_mesh_level=config.max_mesh_level,
    )
    options = (
        level,
        is_global_grid(lon, config.global_grid),
        float(config.grid2mesh_radius_factor),
        config.mesh2grid,
        int(config.mesh2grid_k),
        float(config.region_margin_factor),
    )
    cache_dir = config.graph_cache_dir or os.environ.get(GRAPH_CACHE_ENV) or None
    return _cached_graph(lat.tobytes(), lon.tobytes(), options, cache_dir)


@register_model
class GraphEmulator(Emulator):
    """Encode (grid -> mesh), process (multi-mesh message passing), decode (mesh -> grid)."""

    kind = "graph"

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
        cfg = config_from_dict(GraphConfig, config, where="graph")
        self.config = cfg
        graph = get_graph(self.latitude, self.longitude, cfg)
        self.graph_info = {
            "mesh_level": graph.mesh_level,
            "mesh_nodes": len(graph.mesh_xyz),
            "mesh_edges": int(graph.mesh_senders.size),
            "grid2mesh_edges": int(graph.g2m_senders.size),
            "mesh2grid_edges": int(graph.m2g_senders.size),
            "global_grid": is_global_grid(self.longitude, cfg.global_grid),
        }
        log.info("graph emulator mesh: %s", self.graph_info)
        for name in GridMeshGraph._fields:
            if name in ("mesh_level", "mesh_xyz"):
                continue
            arr = getattr(graph, name)
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(arr)), persistent=False)

        d, hid = cfg.latent, cfg.hidden or cfg.latent
        self.n_mesh = len(graph.mesh_xyz)
        self.grid_embed = MLP(self.n_input + 3, hid, d)
        self.mesh_embed = MLP(3, hid, d)
        self.g2m_edge_embed = MLP(4, hid, d)
        self.mesh_edge_embed = MLP(4, hid, d)
        self.m2g_edge_embed = MLP(4, hid, d)
        self.lead_embed = (
            nn.Sequential(nn.Linear(16, hid), nn.SiLU(), nn.Linear(hid, d)) if cfg.lead_conditioning else None
        )
        self.encoder = InteractionNetwork(d, hid, aggregation=cfg.aggregation)
        self.grid_update = MLP(d, hid, d)
        self.processor = nn.ModuleList(
            InteractionNetwork(d, hid, aggregation=cfg.aggregation) for _ in range(cfg.processor_layers)
        )
        self.decoder = InteractionNetwork(d, hid, aggregation=cfg.aggregation)
        self.output = MLP(d, hid, n_state, layer_norm=False)
        self.register_buffer(
            "forcing_mask", forcing_mask(self.n_forcing, cfg.network_ignores_forcings), persistent=False
        )
        self.linear = linear_part(self, cfg.linear_steps, 1 if self.n_forcing >= 3 else None)
        if self.linear is not None:  # residual: start exactly at the fitted regression
            nn.init.zeros_(self.output.net[-1].weight)
            nn.init.zeros_(self.output.net[-1].bias)

    def config_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self.config)
        d["linear_steps"] = [float(s) for s in d["linear_steps"]]
        return d

    def forward(self, state: torch.Tensor, forcings: torch.Tensor, lead_hours: torch.Tensor) -> torch.Tensor:
        self.check_inputs(state, forcings, lead_hours)
        b, _, h, w = state.shape
        x = torch.cat([state, self.forcing_mask.to(forcings) * forcings], dim=1).flatten(2).transpose(1, 2)
        feats = self.grid_node_features.to(x.dtype).unsqueeze(0).expand(b, -1, -1)
        grid = self.grid_embed(torch.cat([x, feats], dim=-1))  # (B, HW, D)
        if self.lead_embed is not None:
            # Lead time in days with periods from ~1 hour up to ~1000 days.
            lead = sinusoidal_embedding(lead_hours / 24.0, 16, max_period=1000.0).to(grid.dtype)
            grid = grid + self.lead_embed(lead)[:, None, :]
        mesh = self.mesh_embed(self.mesh_node_features)[None].expand(b, -1, -1)  # (B, M, D)

        # Encoder: grid -> mesh, then an MLP update of the grid latents.
        g2m_e = self.g2m_edge_embed(self.g2m_edge_features)[None]
        mesh, _ = self.encoder(grid, mesh, g2m_e, self.g2m_senders, self.g2m_receivers)
        grid = grid + self.grid_update(grid)
        # Processor on the multi-mesh, edge latents carried from layer to layer.
        mesh_e = self.mesh_edge_embed(self.mesh_edge_features)[None]
        for layer in self.processor:
            mesh, mesh_e = layer(mesh, mesh, mesh_e, self.mesh_senders, self.mesh_receivers)
        # Decoder: mesh -> grid.
        m2g_e = self.m2g_edge_embed(self.m2g_edge_features)[None]
        grid, _ = self.decoder(mesh, grid, m2g_e, self.m2g_senders, self.m2g_receivers)
        out = self.output(grid).transpose(1, 2).reshape(b, self.n_state, h, w)  # (B, n_state, H, W)
        return out if self.linear is None else out + self.linear(state, forcings, lead_hours)
