"""pipeline.rollout: hierarchical step plans, rollouts, perturbations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.normalization import ChannelStats
from pipeline.rollout import PlannedStep, perturb, plan_rollout, rollout, simulated_days_per_second


def test_plan_one_call_per_lead_with_cached_parents() -> None:
    plan = plan_rollout(range(1, 25), [1, 3, 6, 12, 24])
    assert len(plan) == 24  # one model call per lead
    by_lead = {p.lead: p for p in plan}
    assert by_lead[24.0] == PlannedStep(24.0, 0.0, 24.0)
    assert by_lead[7.0] == PlannedStep(7.0, 6.0, 1.0)
    assert by_lead[23.0] == PlannedStep(23.0, 22.0, 1.0) and by_lead[22.0].parent == 21.0
    assert all(p.parent < p.lead for p in plan)


def test_plan_adds_unrequested_parents_and_rejects_bad_leads() -> None:
    plan = plan_rollout([9], [3, 6])
    assert [(p.lead, p.parent, p.step) for p in plan] == [(6.0, 0.0, 6.0), (9.0, 6.0, 3.0)]
    with pytest.raises(ValueError, match="cannot be reached"):
        plan_rollout([5], [3, 6])
    with pytest.raises(ValueError, match="single step"):
        plan_rollout([6], [3, 6], history=2)


class StepCounter(torch.nn.Module):
    """Returns a normalised delta of 1 for every step; records the step sizes it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[float] = []

    def forward(self, state: torch.Tensor, forcings: torch.Tensor, lead: torch.Tensor) -> torch.Tensor:
        self.calls.append(float(lead[0]))
        return torch.ones_like(state[:, -1:])


def test_rollout_accumulates_step_residuals() -> None:
    # a delta of 1 adds diff_std(dt) + diff_mean(dt) physical units; with diff_std = dt, diff_mean = 0 and std 1,
    # the state at lead L equals L whatever the decomposition
    stats = ChannelStats(
        names=["a"],
        mean=np.zeros(1),
        std=np.ones(1),
        diff_mean={s: np.zeros(1) for s in (1, 3, 6)},
        diff_std={s: np.array([s]) for s in (1, 3, 6)},
    )
    model = StepCounter()
    seen_leads = []

    def forcing_at(lead: float, states) -> torch.Tensor:
        assert sorted(states) == sorted(x for x in seen_leads if x < lead)  # every state forecast so far
        seen_leads.append(lead)
        return torch.zeros(2, 0, 2, 3)

    out = rollout(model, torch.zeros(2, 1, 1, 2, 3), forcing_at, [1, 2, 4, 7], [1, 3, 6], stats)
    assert sorted(out) == [1.0, 2.0, 4.0, 7.0]
    for lead, state in out.items():
        torch.testing.assert_close(state, torch.full((2, 1, 2, 3), lead))
    # leads 1, 2, 3 (parent of 4), 4, 6 (parent of 7), 7
    assert seen_leads == [1.0, 2.0, 3.0, 4.0, 6.0, 7.0] and model.calls == [1.0, 1.0, 3.0, 1.0, 6.0, 1.0]


def test_perturb_std_and_smoothness() -> None:
    stats = ChannelStats(
        names=["a", "b"],
        mean=np.zeros(2),
        std=np.array([1.0, 4.0]),
        diff_mean={1: np.zeros(2)},
        diff_std={1: np.array([2.0, 2.0])},
    )
    x = torch.zeros(4, 2, 2, 32, 48)
    gen = torch.Generator().manual_seed(0)
    y = perturb(x, stats, 1, 0.5, gen)
    noise = y.numpy()
    np.testing.assert_allclose(noise[:, 0].std(axis=(-2, -1)).mean(axis=0), [1.0, 0.25], rtol=0.05)
    np.testing.assert_array_equal(noise[:, 0], noise[:, 1])  # same perturbation for every history step
    # spatially smoothed: neighbouring cells are strongly correlated
    a = noise[:, 0, 0, :, :-1].ravel()
    b = noise[:, 0, 0, :, 1:].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.8


def test_speed_units() -> None:
    assert simulated_days_per_second(10, 24, 5.0) == pytest.approx(2.0)


def test_lagged_leads_are_one_step_from_an_earlier_analysis_and_chosen_by_score() -> None:
    from pipeline.rollout import choose_lags, lag_candidates

    assert lag_candidates(5, [1, 3, 6, 24]) == [1.0, 19.0]
    assert lag_candidates(24, [1, 3, 6, 24]) == []
    plan = plan_rollout([1, 2, 3, 4], [1, 3, 24], lags={2: 1, 3: 21})
    steps = {(p.lead, p.lagged): (p.parent, p.step) for p in plan}
    # lagged leads are outputs only: +4 h = 3 + 1 still starts from the greedy +3 h (one 3 h step from the init)
    assert steps == {
        (1.0, False): (0.0, 1.0),
        (3.0, False): (0.0, 3.0),
        (4.0, False): (3.0, 1.0),
        (2.0, True): (-1.0, 3.0),
        (3.0, True): (-21.0, 24.0),
    }
    with pytest.raises(ValueError, match="cannot be one trained step from 2.0 h"):
        plan_rollout([2], [1, 3], lags={2: 2})
    with pytest.raises(ValueError, match="history 1"):
        plan_rollout([2], [1], history=2, lags={2: 1})
    # lag 0 (greedy) kept unless a lag scores lower; ties go to the smaller lag
    assert choose_lags({1: {0: 0.5, 2: 0.7}, 2: {0: 1.0, 1: 0.9, 22: 0.8}, 3: {0: 1.0, 21: 1.0}}) == {2: 22.0}


def test_rollout_starts_lagged_leads_from_the_given_analyses() -> None:
    stats = ChannelStats(
        names=["x"],
        mean=np.zeros(1),
        std=np.ones(1),
        diff_mean={s: np.zeros(1) for s in (1.0, 3.0, 6.0)},
        diff_std={s: np.ones(1) for s in (1.0, 3.0, 6.0)},
    )

    class AddStep(torch.nn.Module):  # delta = the step size: state(L) = start + step
        def forward(self, state, forcings, lead_hours):
            return lead_hours[:, None, None, None].expand(state.shape[0], 1, *state.shape[-2:])

    init = torch.zeros(2, 1, 1, 2, 2)
    earlier = torch.full((2, 1, 1, 2, 2), 100.0)
    out = rollout(
        AddStep(),
        init,
        lambda lead, states: torch.zeros(2, 0, 2, 2),
        [1, 3, 4],
        [1, 3, 6],
        stats,
        lags={3: 3},
        lagged_states={3.0: earlier},
    )
    assert torch.allclose(out[1.0], torch.full_like(out[1.0], 1.0))
    assert torch.allclose(out[3.0], torch.full_like(out[3.0], 106.0))  # 6 h step from the analysis 3 h earlier
    assert torch.allclose(out[4.0], torch.full_like(out[4.0], 4.0))  # 3 + 1 from the init: greedy +3 h as parent
