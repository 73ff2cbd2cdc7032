"""Icosahedral meshes on the unit sphere and the multi-mesh of GraphCast, as plain functions over arrays.

A ``TriangularMesh`` holds ``vertices`` (N, 3) float64 on the unit sphere and ``faces`` (F, 3) int64 whose
vertices are ordered counter-clockwise seen from outside the sphere. Refining a mesh (``split_mesh``) keeps
the parent's vertices first and appends the edge midpoints, so the vertices of level k are a prefix of those
of level k+1 and the edges of every level can be merged into one multi-mesh over the finest vertices.

Level k has 10 * 4**k + 2 vertices, 20 * 4**k faces and 30 * 4**k undirected edges.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

# Great-circle length of an edge of the regular icosahedron, in degrees (arctan 2).
ICOSAHEDRON_EDGE_DEG = float(np.degrees(np.arctan(2.0)))


class TriangularMesh(NamedTuple):
    """A triangle mesh on the unit sphere: vertices (N, 3) float64, faces (F, 3) int64 (counter-clockwise)."""

    vertices: np.ndarray
    faces: np.ndarray


def get_icosahedron() -> TriangularMesh:
    """The regular icosahedron inscribed in the unit sphere (12 vertices, 20 outward-oriented faces)."""
    phi = (1.0 + np.sqrt(5.0)) / 2.0
    vertices = np.array(
        [
            [-1, phi, 0],
            [1, phi, 0],
            [-1, -phi, 0],
            [1, -phi, 0],
            [0, -1, phi],
            [0, 1, phi],
            [0, -1, -phi],
            [0, 1, -phi],
            [phi, 0, -1],
            [phi, 0, 1],
            [-phi, 0, -1],
            [-phi, 0, 1],
        ],
        dtype=np.float64,
    )
    vertices /= np.linalg.norm(vertices, axis=1, keepdims=True)
    faces = np.array(
        [
            [0, 11, 5],
            [0, 5, 1],
            [0, 1, 7],
            [0, 7, 10],
            [0, 10, 11],
            [1, 5, 9],
            [5, 11, 4],
            [11, 10, 2],
            [10, 7, 6],
            [7, 1, 8],
            [3, 9, 4],
            [3, 4, 2],
            [3, 2, 6],
            [3, 6, 8],
            [3, 8, 9],
            [4, 9, 5],
            [2, 4, 11],
            [6, 2, 10],
            [8, 6, 7],
            [9, 8, 1],
        ],
        dtype=np.int64,
    )
    return TriangularMesh(vertices, _orient_outward(vertices, faces))


def _orient_outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Reorder each face so that its normal (v1 - v0) x (v2 - v0) points away from the centre."""
    v0, v1, v2 = (vertices[faces[:, i]] for i in range(3))
    inward = np.einsum("ij,ij->i", np.cross(v1 - v0, v2 - v0), v0 + v1 + v2) < 0
    out = faces.copy()
    out[inward] = out[inward][:, [0, 2, 1]]
    return out


def split_mesh(mesh: TriangularMesh) -> TriangularMesh:
    """Split every triangle into four through its edge midpoints (projected back onto the sphere).

    The returned vertices start with ``mesh.vertices`` unchanged; the midpoints follow, one per edge.
    """
    n = len(mesh.vertices)
    f = mesh.faces
    # The three edges of every face, (F, 3, 2): (v0, v1), (v1, v2), (v2, v0).
    edges = np.stack([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], axis=1)
    pairs = np.sort(edges.reshape(-1, 2), axis=1)
    keys, inverse = np.unique(pairs[:, 0] * n + pairs[:, 1], return_inverse=True)
    mid = mesh.vertices[keys // n] + mesh.vertices[keys % n]
    mid /= np.linalg.norm(mid, axis=1, keepdims=True)
    m = (n + inverse.reshape(-1)).reshape(-1, 3)  # midpoint index of edges (01, 12, 20) of each face
    v0, v1, v2 = f[:, 0], f[:, 1], f[:, 2]
    m01, m12, m20 = m[:, 0], m[:, 1], m[:, 2]
    new_faces = np.concatenate(
        [
            np.stack([v0, m01, m20], axis=1),
            np.stack([m01, v1, m12], axis=1),
            np.stack([m20, m12, v2], axis=1),
            np.stack([m01, m12, m20], axis=1),
        ]
    )
    return TriangularMesh(np.concatenate([mesh.vertices, mid]), new_faces.astype(np.int64))


def get_hierarchy_of_meshes(level: int) -> list[TriangularMesh]:
    """Meshes of refinement levels 0..level (index k holds level k), starting from the icosahedron."""
    if level < 0:
        raise ValueError(f"mesh level must be >= 0; got {level}")
    meshes = [get_icosahedron()]
    for _ in range(level):
        meshes.append(split_mesh(meshes[-1]))
    return meshes


def merge_meshes(meshes: list[TriangularMesh]) -> TriangularMesh:
    """The multi-mesh: the finest vertices and the faces of every level (coarse vertices are a prefix)."""
    for coarse, fine in itertools.pairwise(meshes):
        if not np.array_equal(coarse.vertices, fine.vertices[: len(coarse.vertices)]):
            raise ValueError("meshes are not a refinement hierarchy: coarse vertices are not a prefix of fine ones")
    return TriangularMesh(meshes[-1].vertices, np.concatenate([m.faces for m in meshes]))


def faces_to_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges (both directions) of the triangles, deduplicated: (senders, receivers), each (E,) int64.

    Sorted by receiver, then sender.
    """
    f = np.asarray(faces, dtype=np.int64)
    s = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    r = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    n = int(f.max()) + 1 if f.size else 0
    key = np.unique(r * n + s)
    return key % n, key // n


def cartesian_to_lat_lon(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (..., 3) -> (latitude, longitude) in degrees; longitude in [0, 360)."""
    lat = np.degrees(np.arcsin(np.clip(xyz[..., 2], -1.0, 1.0)))
    lon = np.mod(np.degrees(np.arctan2(xyz[..., 1], xyz[..., 0])), 360.0)
    return lat, lon


def lat_lon_to_cartesian(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(latitude, longitude) in degrees (broadcastable) -> unit vectors (..., 3)."""
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack(np.broadcast_arrays(np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)), axis=-1)


def edge_angles_deg(vertices: np.ndarray, senders: np.ndarray, receivers: np.ndarray) -> np.ndarray:
    """Great-circle length of each edge in degrees, (E,)."""
    dot = np.einsum("ij,ij->i", vertices[senders], vertices[receivers])
    return np.degrees(np.arccos(np.clip(dot, -1.0, 1.0)))


def approx_edge_length_deg(level: int) -> float:
    """Shortest edge of refinement level ``level`` in degrees, 63.4 / 2**level (the mean is ~1.09x this,
    the longest ~1.19x)."""
    return ICOSAHEDRON_EDGE_DEG / 2.0**level


def level_for_resolution(resolution_deg: float, *, max_level: int = 8) -> int:
    """Smallest level whose shortest edge is no longer than ``resolution_deg`` (capped at ``max_level``)."""
    if resolution_deg <= 0:
        raise ValueError(f"mesh resolution must be > 0 degrees; got {resolution_deg}")
    level = int(np.ceil(np.log2(ICOSAHEDRON_EDGE_DEG / resolution_deg) - 1e-9))
    return int(np.clip(level, 0, max_level))


def in_lat_lon_box(
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    lat_min: float,
    lat_max: float,
    lon_min: float,
    lon_max: float,
    margin_deg: float = 0.0,
) -> np.ndarray:
    """Boolean mask of points inside a latitude/longitude box widened by ``margin_deg`` of arc.

    Longitudes are compared modulo 360 from the western edge ``lon_min``, so boxes crossing the prime meridian
    (350..362 or -10..2) work. The longitude margin is widened by 1 / cos(latitude) at the box's most poleward
    latitude so that it is ``margin_deg`` of arc there.
    """
    lat_lo, lat_hi = lat_min - margin_deg, lat_max + margin_deg
    if lat_lo <= -90 or lat_hi >= 90:
        lon_margin = 360.0
    else:
        coslat = np.cos(np.radians(max(abs(lat_lo), abs(lat_hi))))
        lon_margin = margin_deg / max(coslat, 1e-6)
    width = (lon_max - lon_min) + 2 * lon_margin
    in_lat = (lat >= lat_lo) & (lat <= lat_hi)
    if width >= 360:
        return in_lat
    in_lon = np.mod(lon - (lon_min - lon_margin), 360.0) <= width
    return in_lat & in_lon


def restrict_to_nodes(
    keep: np.ndarray, senders: np.ndarray, receivers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the nodes where ``keep`` (N,) is True and the edges between two kept nodes.

    Returns (old index of each kept node, senders, receivers) with edges renumbered to the kept nodes.
    """
    keep = np.asarray(keep, dtype=bool)
    old = np.flatnonzero(keep)
    new_index = np.full(keep.shape[0], -1, dtype=np.int64)
    new_index[old] = np.arange(old.size)
    both = keep[senders] & keep[receivers]
    return old, new_index[senders[both]], new_index[receivers[both]]
