"""Connectivity between a latitude/longitude grid and a mesh on the unit sphere, and the spherical geometry
features of nodes and edges. Pure numpy/scipy; no torch.

Conventions: grid nodes are numbered row-major over (latitude, longitude), i.e. index = i_lat * W + i_lon, the
order of ``field.reshape(H * W)``. Edges are (senders, receivers) int64 arrays.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from models.icosahedral_mesh import cartesian_to_lat_lon, lat_lon_to_cartesian


def grid_positions(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Unit vectors of the grid nodes, (H * W, 3), row-major over (latitude, longitude)."""
    lat2, lon2 = np.meshgrid(np.asarray(latitude, float), np.asarray(longitude, float), indexing="ij")
    return lat_lon_to_cartesian(lat2.reshape(-1), lon2.reshape(-1))


def _chord(angle_deg: float) -> float:
    return float(2.0 * np.sin(np.radians(angle_deg) / 2.0))


def radius_query_edges(grid_xyz: np.ndarray, mesh_xyz: np.ndarray, radius_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid -> mesh edges: every grid node within ``radius_deg`` of arc of a mesh node sends to it.

    Returns (senders = grid indices, receivers = mesh indices), sorted by receiver then sender.
    """
    tree = cKDTree(grid_xyz)
    hits = tree.query_ball_point(mesh_xyz, r=_chord(radius_deg))
    receivers = np.repeat(np.arange(len(mesh_xyz), dtype=np.int64), [len(h) for h in hits])
    senders = np.fromiter((i for h in hits for i in sorted(h)), dtype=np.int64, count=int(receivers.size))
    return senders, receivers


def nearest_nodes_edges(mesh_xyz: np.ndarray, grid_xyz: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Mesh -> grid edges: each grid node receives from its ``k`` nearest mesh nodes.

    Returns (senders = mesh indices, receivers = grid indices), sorted by receiver.
    """
    k = int(min(k, len(mesh_xyz)))
    tree = cKDTree(mesh_xyz)
    _, idx = tree.query(grid_xyz, k=k)
    idx = np.asarray(idx, dtype=np.int64).reshape(len(grid_xyz), k)
    receivers = np.repeat(np.arange(len(grid_xyz), dtype=np.int64), k)
    return idx.reshape(-1), receivers


def containing_triangle_edges(
    mesh_xyz: np.ndarray, faces: np.ndarray, grid_xyz: np.ndarray, *, fallback_k: int = 3, candidates: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Mesh -> grid edges: each grid node receives from the 3 vertices of the mesh triangle containing it.

    faces (F, 3) index ``mesh_xyz`` and are ordered counter-clockwise seen from outside. A point p lies in the
    spherical triangle (a, b, c) when p.(a x b), p.(b x c), p.(c x a) are all >= 0. The ``candidates``
    triangles with the nearest centroids are tested; grid nodes in none of them (outside a regional mesh) fall
    back to their ``fallback_k`` nearest mesh nodes. Returns (senders = mesh, receivers = grid), by receiver.
    """
    faces = np.asarray(faces, dtype=np.int64)
    n_grid = len(grid_xyz)
    face_of = np.full(n_grid, -1, dtype=np.int64)
    if len(faces):
        a, b, c = (mesh_xyz[faces[:, i]] for i in range(3))
        normals = np.stack([np.cross(a, b), np.cross(b, c), np.cross(c, a)], axis=1)  # (F, 3, 3)
        k = int(min(candidates, len(faces)))
        tree = cKDTree((a + b + c) / 3.0)
        for start in range(0, n_grid, 100_000):  # blocks bound the (G, k, 3, 3) temporary
            pts = grid_xyz[start : start + 100_000]
            _, cand = tree.query(pts, k=k)
            cand = np.asarray(cand, dtype=np.int64).reshape(len(pts), k)
            inside = np.einsum("gkij,gj->gki", normals[cand], pts).min(axis=-1) >= -1e-12  # (G, k)
            found = inside.any(axis=1)
            face_of[start + np.flatnonzero(found)] = cand[found, inside[found].argmax(axis=1)]
    found = face_of >= 0
    senders = [faces[face_of[found]].reshape(-1)]
    receivers = [np.repeat(np.flatnonzero(found), 3)]
    if not found.all():
        s, r = nearest_nodes_edges(mesh_xyz, grid_xyz[~found], k=fallback_k)
        senders.append(s)
        receivers.append(np.flatnonzero(~found)[r])
    s, r = np.concatenate(senders), np.concatenate(receivers)
    order = np.argsort(r, kind="stable")
    return s[order], r[order]


def node_features(xyz: np.ndarray) -> np.ndarray:
    """Structural node features (N, 3) float32: cos(latitude), sin(longitude), cos(longitude)."""
    lat, lon = cartesian_to_lat_lon(xyz)
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la), np.sin(lo), np.cos(lo)], axis=-1).astype(np.float32)


def rotate_to_receiver_frame(vectors: np.ndarray, receiver_xyz: np.ndarray) -> np.ndarray:
    """Rotate each vector (E, 3) by the rotation taking its receiver (E, 3) to (lat 0, lon 0) = (1, 0, 0).

    The rotation is R_y(lat) @ R_z(-lon): first about the polar axis by -longitude, then about the y axis by
    +latitude, so local north of the receiver becomes +z and local east +y.
    """
    lat, lon = cartesian_to_lat_lon(receiver_xyz)
    la, lo = np.radians(lat), np.radians(lon)
    x, y, z = vectors[:, 0], vectors[:, 1], vectors[:, 2]
    # R_z(-lon)
    x1 = np.cos(lo) * x + np.sin(lo) * y
    y1 = -np.sin(lo) * x + np.cos(lo) * y
    # R_y(lat): rotate in the x-z plane so that a vector at latitude `lat` comes down to the equator.
    x2 = np.cos(la) * x1 + np.sin(la) * z
    z2 = -np.sin(la) * x1 + np.cos(la) * z
    return np.stack([x2, y1, z2], axis=-1)


def edge_features(
    sender_xyz: np.ndarray,
    receiver_xyz: np.ndarray,
    senders: np.ndarray,
    receivers: np.ndarray,
    *,
    scale: float | None = None,
) -> np.ndarray:
    """Edge features (E, 4) float32: length, and the sender - receiver displacement in the receiver's frame.

    All four are divided by ``scale`` (default: the longest edge's chord length), so the longest edge has
    length 1, as GraphCast normalises them.
    """
    s = sender_xyz[senders]
    r = receiver_xyz[receivers]
    disp = rotate_to_receiver_frame(s, r) - rotate_to_receiver_frame(r, r)
    length = np.linalg.norm(s - r, axis=-1, keepdims=True)
    if scale is None:
        scale = float(length.max()) if length.size else 1.0
    scale = scale if scale > 0 else 1.0
    return (np.concatenate([length, disp], axis=-1) / scale).astype(np.float32)


def receivers_covered(receivers: np.ndarray, n_nodes: int) -> np.ndarray:
    """Number of incoming edges of every node, (n_nodes,) int64."""
    return np.bincount(np.asarray(receivers, dtype=np.int64), minlength=n_nodes)
