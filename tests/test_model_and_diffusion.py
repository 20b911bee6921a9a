"""The network's shape contract and the diffusion math, checked against quantities known in closed form."""

import numpy as np
import pytest
import torch

from raccoon.diffusion import Schedule, ddim_sample, ddim_timesteps
from raccoon.model import UNet, UNetConfig


def test_unet_size_and_shapes():
    net = UNet(UNetConfig())
    assert sum(p.numel() for p in net.parameters()) == 8_103_683  # the count the README reports
    out = net(torch.randn(2, 3, 64, 64), torch.tensor([0.0, 999.0]))
    assert out.shape == (2, 3, 64, 64)


def test_unet_depends_on_timestep_and_image():
    torch.manual_seed(0)
    net = UNet(UNetConfig(dropout=0.0)).eval()
    for p in net.parameters():  # leave the zero-initialised identity start behind
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(1, 3, 64, 64)
    base = net(x, torch.tensor([10.0]))
    assert not torch.allclose(base, net(x, torch.tensor([900.0])))
    assert not torch.allclose(base, net(x.flip(3), torch.tensor([10.0])))


def test_bf16_channels_last_training_path_tracks_fp32():
    torch.manual_seed(0)
    net = UNet(UNetConfig(dropout=0.0)).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.02)
    x, t = torch.randn(2, 3, 64, 64), torch.tensor([5.0, 500.0])
    reference = net(x, t)
    fast = net.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        approx = fast(x.contiguous(memory_format=torch.channels_last), t).float()
    assert (approx - reference).abs().max() < 0.05 * reference.abs().max()


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_goes_from_signal_to_noise(kind):
    a = Schedule(kind).alphas_cumprod
    assert a.shape == (1000,) and np.all(np.diff(a) < 0)
    assert a[0] > 0.999 and a[-1] < 1e-3
    if kind == "linear":
        assert a[0] == pytest.approx(1 - 1e-4)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_predict_x0_inverts_the_forward_process_and_the_target(kind, prediction):
    schedule = Schedule(kind, prediction)
    rng = np.random.default_rng(0)
    x0, noise = rng.standard_normal((2, 64, 3, 8, 8))
    t = rng.integers(0, schedule.train_steps, 64)
    t[:2] = 0, schedule.train_steps - 1  # the ends, where the signal or the noise share is smallest
    x_t = schedule.add_noise(x0, noise, t)
    np.testing.assert_allclose(schedule.predict_x0(schedule.target(x0, noise, t), x_t, t), x0, atol=1e-9)
    np.testing.assert_allclose(schedule.predict_noise(x0, x_t, t), noise, atol=1e-9)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_schedule_takes_torch_tensors_as_training_does(prediction):
    """Training hands the schedule float32 tensors and one step per image: the same process, in float32."""
    schedule = Schedule("cosine", prediction)
    torch.manual_seed(0)
    x0, noise = torch.randn(2, 16, 3, 8, 8)
    t = torch.randint(0, schedule.train_steps, (16,))
    for method in (schedule.add_noise, schedule.target):
        out = method(x0, noise, t)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
        np.testing.assert_allclose(out.numpy(), method(x0.double().numpy(), noise.double().numpy(), t.numpy()),
                                   atol=1e-6)


def test_schedule_computes_in_its_inputs_dtype():
    """No float64 coefficient sneaks into float32 arithmetic (NumPy 2 would promote it, NumPy 1 would not)."""
    schedule = Schedule("cosine", "v")
    x0, noise = np.random.default_rng(0).standard_normal((2, 4, 3, 8, 8)).astype(np.float32)
    for t in (400, np.array([0, 10, 500, 999])):
        x_t = schedule.add_noise(x0, noise, t)
        outputs = [x_t, schedule.target(x0, noise, t), schedule.predict_x0(noise, x_t, t),
                   schedule.predict_noise(x0, x_t, t)]
        assert [out.dtype for out in outputs] == [np.float32] * 4


def test_ddim_steps_in_float64_and_feeds_the_network_float32():
    """The sampler's precision is stated, not left to NumPy's promotion rules: the painted bytes depend on it."""
    schedule = Schedule("cosine", "v")
    seen = []

    def network(x, t):
        assert x.dtype == np.float32
        return (0.5 * x).astype(np.float32)

    noise = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    out = ddim_sample(network, noise, schedule, steps=5, on_step=lambda i, x0: seen.append(x0.dtype))
    assert seen == [np.float64] * 5 and out.dtype == np.float32


def test_ddim_timesteps():
    assert ddim_timesteps(1000, 50)[0] == 999 and ddim_timesteps(1000, 50)[-1] == 0
    assert len(set(ddim_timesteps(1000, 50))) == 50
    with pytest.raises(ValueError):
        ddim_timesteps(1000, 0)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_ddim_with_an_oracle_network_lands_on_its_image(prediction):
    """A network that knows the answer makes DDIM walk straight to it: the sampler's algebra is right."""
    schedule = Schedule("linear", prediction)
    target = np.random.default_rng(1).uniform(-0.9, 0.9, (1, 3, 8, 8)).astype(np.float32)
    seen = []

    def oracle(x, t):
        a, s = np.sqrt(schedule.alphas_cumprod[t]), np.sqrt(1 - schedule.alphas_cumprod[t])
        eps = (x - a * target) / s
        return eps if prediction == "epsilon" else a * eps - s * target

    noise = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    out = ddim_sample(oracle, noise, schedule, steps=10, on_step=lambda i, x0: seen.append(i))
    np.testing.assert_allclose(out, target, atol=1e-4)
    assert seen == list(range(10))
