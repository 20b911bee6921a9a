"""Data-parallel training: two processes, each on half of every batch, take the steps one process takes on all of it.

The two processes are real ones, joined as under torchrun (RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT) by
train.join, over gloo on the loopback interface. The batches, timesteps and noise are drawn here and handed in,
so both setups see the same ones.
"""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import TINY_UNET
from torch.nn.parallel import DistributedDataParallel

from raccoon import train
from raccoon.diffusion import Schedule
from raccoon.model import UNet

STEPS, BATCH, SIZE = 3, 8, 32
SCHEDULE = Schedule("cosine", "v")
# In fp32 (bf16 autocast off) the two setups differ only in the rounding of the gradients' sums: the parameters
# move by up to 3e-4 in these steps and agree to within 1e-7 here, so 1e-6 leaves room for other CPUs' kernels.
TOLERANCE = 1e-6


def draws():
    """The steps' batches, timesteps and noise, the same in every process."""
    generator = torch.Generator().manual_seed(1)
    x0 = torch.rand(STEPS, BATCH, 3, SIZE, SIZE, generator=generator) * 2 - 1
    t = torch.randint(0, SCHEDULE.train_steps, (STEPS, BATCH), generator=generator)
    return x0, t, torch.randn(x0.shape, generator=generator)


def take_steps(model, net, shard: slice) -> dict:
    """STEPS optimizer steps of `model` (net, or net wrapped for data parallelism) on its shard of each batch:
    the resulting weights, their EMA, and the losses."""
    ema = UNet(TINY_UNET).requires_grad_(False)
    ema.load_state_dict(net.state_dict())
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.0)
    losses = []
    for step, (x0, t, noise) in enumerate(zip(*draws())):
        loss = train.optimizer_step(model, optimizer, SCHEDULE, x0[shard], t[shard], noise[shard], 5.0, bf16=False)
        train.update_ema(ema, net, step, decay=0.999)
        losses.append(loss.item())
    return {"net": net.state_dict(), "ema": ema.state_dict(), "losses": torch.tensor(losses)}


def network() -> UNet:
    torch.manual_seed(0)
    net = UNet(TINY_UNET)
    for p in net.parameters():  # random everywhere, so every layer has gradients from the first step
        torch.nn.init.normal_(p, std=0.05)
    return net


def rank_process(rank: int, world_size: int, port: int, results: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    ranks = train.join("cpu")
    try:
        net = network()
        share = BATCH // world_size
        result = take_steps(DistributedDataParallel(net), net, slice(rank * share, (rank + 1) * share))
        torch.save(result, f"{results}/rank-{ranks.rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_on_half_batches_take_the_whole_batch_step(tmp_path):
    mp.spawn(rank_process, args=(2, free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank-{rank}.pt", weights_only=True) for rank in range(2)]
    net = network()
    start = {k: v.clone() for k, v in net.state_dict().items()}
    alone = take_steps(net, net, slice(None))

    # Each rank's loss is the mean over its half, so their mean is the whole batch's (and so are the gradients).
    torch.testing.assert_close((ranks[0]["losses"] + ranks[1]["losses"]) / 2, alone["losses"], rtol=1e-6, atol=0)
    for name in ("net", "ema"):
        assert max((alone[name][k] - start[k]).abs().max().item() for k in start) > 100 * TOLERANCE  # they moved
        for k, value in alone[name].items():
            assert torch.equal(ranks[0][name][k], ranks[1][name][k]), f"the ranks' {name} differ at {k}"
            torch.testing.assert_close(ranks[0][name][k], value, rtol=0, atol=TOLERANCE, msg=f"{name} {k}")
