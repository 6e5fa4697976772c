"""train(): the recorded trajectory is exactly what the optimizer did."""

import pytest
import torch
from test_params import batches, lm_loss, tiny_gpt2

from lls.params import ParamSpace, batch_gradients
from lls.train import train


def test_updates_sum_to_displacement_with_adam():
    model = tiny_gpt2()
    space = ParamSpace(model)
    bs = batches(6)
    traj = train(space, lm_loss, bs, 6, optimizer="adam", lr=1e-2, record_first=6, progress=False)
    assert traj.updates.shape == (6, space.dim)
    assert torch.equal(traj.end, space.get())
    assert not torch.allclose(traj.start, traj.end)
    assert torch.allclose(traj.updates.sum(0), traj.displacement(), atol=1e-6)
    assert (traj.updates.norm(dim=1) > 0).all()
    assert len(traj.losses) == 6
    assert traj.nbytes == (6 + 2) * space.dim * 4


def test_sgd_updates_are_minus_lr_times_recorded_gradients():
    model = tiny_gpt2()
    space = ParamSpace(model)
    bs = batches(5)
    first = batch_gradients(space, lm_loss, bs[:1])[0]
    lr = 0.1
    traj = train(space, lm_loss, lambda step: bs[step], 5, optimizer="sgd", lr=lr, record_first=3,
                 gradient_steps=(0, 2), progress=False)
    assert traj.updates.shape == (3, space.dim)
    assert torch.allclose(traj.gradients[0], first, atol=1e-6)
    for t in (0, 2):
        assert torch.allclose(traj.updates[t], -lr * traj.gradients[t], atol=1e-6)
    assert not torch.allclose(traj.updates.sum(0), traj.displacement(), atol=1e-4)  # only 3 of 5


def test_checkpoints_and_subset_space():
    model = tiny_gpt2()
    names = ["transformer.h.1.mlp.c_proj.weight"]
    space = ParamSpace(model, names)
    full = ParamSpace(model)
    rest_before = full.get()
    traj = train(space, lm_loss, batches(7), 7, lr=1e-2, checkpoint_every=3, progress=False)
    assert sorted(traj.checkpoints) == [0, 3, 6, 7]
    assert torch.equal(traj.checkpoints[0], traj.start)
    assert torch.equal(traj.checkpoints[7], traj.end)
    assert not torch.equal(traj.checkpoints[3], traj.checkpoints[6])
    off = full.to_dict(full.get() - rest_before)  # only the subset moved
    assert torch.count_nonzero(off[names[0]]) > 0
    assert all(torch.count_nonzero(v) == 0 for n, v in off.items() if n not in names)
    assert traj.updates.shape == (0, space.dim)
    with pytest.raises(ValueError):
        train(space, lm_loss, batches(1), 1, lr=0.1, optimizer="lbfgs", progress=False)


def test_lr_factor_schedules_the_step_size():
    model = tiny_gpt2()
    space = ParamSpace(model)
    traj = train(space, lm_loss, batches(4), 4, optimizer="sgd", lr=0.1, record_first=4,
                 gradient_steps=(0, 1), lr_factor=lambda step: [1.0, 0.5, 0.0, 0.0][step], progress=False)
    assert torch.allclose(traj.updates[0], -0.1 * traj.gradients[0], atol=1e-6)
    assert torch.allclose(traj.updates[1], -0.05 * traj.gradients[1], atol=1e-6)
    assert torch.count_nonzero(traj.updates[2:]) == 0
