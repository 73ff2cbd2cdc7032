"""Icosahedral mesh construction and grid <-> mesh connectivity (pure numpy)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from models import grid_mesh_connectivity as gmc
from models import icosahedral_mesh as icm
from models.graph_emulator import build_grid_mesh_graph, choose_mesh_level

UK_LAT = np.linspace(50.0, 58.0, 33)
UK_LON = np.linspace(350.0, 362.0, 49)


@pytest.fixture(scope="module")
def uk_graph():
    return build_grid_mesh_graph(UK_LAT, UK_LON, mesh_level=7, global_grid=False)


@pytest.fixture(scope="module")
def hierarchy() -> list[icm.TriangularMesh]:
    return icm.get_hierarchy_of_meshes(4)


def test_vertex_face_edge_counts(hierarchy):
    for k, mesh in enumerate(hierarchy):
        assert mesh.vertices.shape == (10 * 4**k + 2, 3)
        assert mesh.faces.shape == (20 * 4**k, 3)
        s, _r = icm.faces_to_edges(mesh.faces)
        assert s.size == 2 * 30 * 4**k  # directed, both ways
        # Euler characteristic of the sphere: V - E + F = 2.
        assert len(mesh.vertices) - s.size // 2 + len(mesh.faces) == 2


def test_vertices_on_unit_sphere_and_prefix(hierarchy):
    for coarse, fine in itertools.pairwise(hierarchy):
        np.testing.assert_allclose(np.linalg.norm(fine.vertices, axis=1), 1.0, atol=1e-12)
        np.testing.assert_array_equal(fine.vertices[: len(coarse.vertices)], coarse.vertices)


def test_faces_outward_and_each_edge_in_two_faces(hierarchy):
    mesh = hierarchy[3]
    v0, v1, v2 = (mesh.vertices[mesh.faces[:, i]] for i in range(3))
    assert np.all(np.einsum("ij,ij->i", np.cross(v1 - v0, v2 - v0), v0) > 0)
    # Directed half-edges of consistently oriented faces are all distinct.
    f = mesh.faces
    half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(half, axis=0)) == len(half)


def test_edge_lengths_nearly_uniform_and_halving(hierarchy):
    means = []
    for k, mesh in enumerate(hierarchy):
        s, r = icm.faces_to_edges(mesh.faces)
        a = icm.edge_angles_deg(mesh.vertices, s, r)
        assert a.max() / a.min() < 1.25
        assert a.min() == pytest.approx(icm.approx_edge_length_deg(k), rel=1e-6)
        means.append(a.mean())
    ratios = np.array(means[:-1]) / np.array(means[1:])
    np.testing.assert_allclose(ratios, 2.0, rtol=0.1)


def test_multi_mesh_edges_are_union_of_levels(hierarchy):
    merged = icm.merge_meshes(hierarchy)
    s, r = icm.faces_to_edges(merged.faces)
    # Edges of different levels never coincide (a coarse edge spans two fine ones), so the union counts add.
    assert s.size == sum(2 * 30 * 4**k for k in range(len(hierarchy)))
    assert np.all(s != r)
    assert len(np.unique(s * len(merged.vertices) + r)) == s.size


def test_level_for_resolution():
    assert icm.level_for_resolution(0.5) == 7
    assert icm.level_for_resolution(3.0) == 5
    assert icm.level_for_resolution(100.0) == 0
    assert icm.level_for_resolution(1e-3, max_level=6) == 6
    assert choose_mesh_level(UK_LAT, UK_LON) == 7
    assert choose_mesh_level(UK_LAT, UK_LON, mesh_level=3) == 3


def test_lat_lon_round_trip_and_box_across_meridian():
    lat = np.array([51.0, -30.0, 89.0])
    lon = np.array([359.5, 10.0, 180.0])
    la, lo = icm.cartesian_to_lat_lon(icm.lat_lon_to_cartesian(lat, lon))
    np.testing.assert_allclose(la, lat, atol=1e-9)
    np.testing.assert_allclose(lo, lon, atol=1e-9)
    pts_lat = np.array([54.0, 54.0, 54.0, 54.0, 60.0])
    pts_lon = np.array([355.0, 1.0, 3.5, 20.0, 0.0])
    inside = icm.in_lat_lon_box(pts_lat, pts_lon, lat_min=50, lat_max=58, lon_min=350, lon_max=362)
    np.testing.assert_array_equal(inside, [True, True, False, False, False])
    wider = icm.in_lat_lon_box(pts_lat, pts_lon, lat_min=50, lat_max=58, lon_min=-10, lon_max=2, margin_deg=1.0)
    np.testing.assert_array_equal(wider, [True, True, True, False, False])


def test_rotation_to_receiver_frame_moves_receiver_to_reference():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    rot = gmc.rotate_to_receiver_frame(v, v)
    np.testing.assert_allclose(rot, np.tile([1.0, 0.0, 0.0], (50, 1)), atol=1e-12)
    # Lengths are preserved, and local north maps to +z.
    w = rng.normal(size=(50, 3))
    np.testing.assert_allclose(
        np.linalg.norm(gmc.rotate_to_receiver_frame(w, v), axis=1), np.linalg.norm(w, axis=1), rtol=1e-12
    )
    north = icm.lat_lon_to_cartesian(np.array([10.1]), np.array([40.0])) - icm.lat_lon_to_cartesian(
        np.array([10.0]), np.array([40.0])
    )
    d = gmc.rotate_to_receiver_frame(north, icm.lat_lon_to_cartesian(np.array([10.0]), np.array([40.0])))
    assert d[0, 2] > 0 and abs(d[0, 1]) < 1e-9


def test_regional_graph_restricted_to_domain_and_connected(uk_graph):
    g = uk_graph
    n_grid = UK_LAT.size * UK_LON.size
    assert 100 <= len(g.mesh_xyz) <= 500
    lat, lon = icm.cartesian_to_lat_lon(g.mesh_xyz)
    assert lat.min() > 48.5 and lat.max() < 59.5
    assert np.all(np.mod(lon - 347.0, 360.0) <= 18.0)
    # Every grid node receives from >= 1 mesh node, every mesh edge joins kept nodes, features are sane.
    assert gmc.receivers_covered(g.m2g_receivers, n_grid).min() >= 1
    assert g.mesh_senders.max() < len(g.mesh_xyz) and g.g2m_senders.max() < n_grid
    assert gmc.receivers_covered(g.g2m_receivers, len(g.mesh_xyz)).sum() == g.g2m_senders.size > 0
    assert g.mesh_edge_features.shape == (g.mesh_senders.size, 4)
    assert np.isclose(g.mesh_edge_features[:, 0].max(), 1.0)
    assert np.all(np.isfinite(g.g2m_edge_features)) and np.all(np.isfinite(g.m2g_edge_features))


def test_global_graph_covers_sphere():
    lat = np.linspace(-90, 90, 37)
    lon = np.arange(72) * 5.0
    g = build_grid_mesh_graph(lat, lon, mesh_level=3, global_grid=True)
    assert len(g.mesh_xyz) == 642
    assert g.mesh_senders.size == 2 * sum(30 * 4**k for k in range(4))
    assert gmc.receivers_covered(g.m2g_receivers, lat.size * lon.size).min() == 3
    # Radius 0.6 x longest edge (~5.7 deg) around each mesh node reaches a 5-degree grid point everywhere.
    assert gmc.receivers_covered(g.g2m_receivers, 642).min() >= 1


def test_periodic_latitude_band_keeps_band_only():
    lat = np.linspace(-60, 60, 25)
    lon = np.arange(72) * 5.0
    g = build_grid_mesh_graph(lat, lon, mesh_level=3, global_grid=True)
    mlat, mlon = icm.cartesian_to_lat_lon(g.mesh_xyz)
    assert 300 < len(g.mesh_xyz) < 642
    assert np.abs(mlat).max() < 70 and np.ptp(mlon) > 350
    assert gmc.receivers_covered(g.g2m_receivers, len(g.mesh_xyz)).min() >= 1


def test_mesh2grid_uses_containing_triangle(uk_graph):
    lat = np.linspace(-90, 90, 37)
    lon = np.arange(72) * 5.0
    g = build_grid_mesh_graph(lat, lon, mesh_level=3, global_grid=True)
    grid_xyz = gmc.grid_positions(lat, lon)
    np.testing.assert_array_equal(np.bincount(g.m2g_receivers), 3)
    tri = g.m2g_senders.reshape(-1, 3)
    finest = icm.get_hierarchy_of_meshes(3)[-1]
    faces = {tuple(sorted(f)) for f in finest.faces.tolist()}
    assert all(tuple(sorted(t)) in faces for t in tri.tolist())
    # Each grid point lies inside (or on the edge of) its spherical triangle: all barycentric weights >= 0.
    weights = np.linalg.solve(np.transpose(g.mesh_xyz[tri], (0, 2, 1)), grid_xyz[..., None])[..., 0]
    assert weights.min() > -1e-9
    # The UK grid: interior points use a containing triangle; every point gets exactly 3 senders.
    uk = uk_graph
    np.testing.assert_array_equal(np.bincount(uk.m2g_receivers, minlength=UK_LAT.size * UK_LON.size), 3)
    uk_tri = uk.m2g_senders.reshape(-1, 3)
    uk_xyz = gmc.grid_positions(UK_LAT, UK_LON)
    w = np.linalg.solve(np.transpose(uk.mesh_xyz[uk_tri], (0, 2, 1)), uk_xyz[..., None])[..., 0]
    assert (w.min(axis=1) > -1e-9).mean() > 0.95  # the rest, at the domain's edge, use the 3 nearest nodes
    nearest = build_grid_mesh_graph(UK_LAT, UK_LON, mesh_level=7, global_grid=False, mesh2grid="nearest")
    assert not np.array_equal(nearest.m2g_senders, uk.m2g_senders)
