"""The runtime: one CPU process here; loaders whose order depends only on (seed, epoch); worker counts."""

import torch
from torch.utils.data import TensorDataset

from training.runtime import Runtime, cpu_runtime, loader_workers, make_loader, setup_runtime, unwrap


def test_a_single_cpu_process_is_rank_0_of_1_and_seeds_torch():
    rt = setup_runtime("cpu", threads=1, seed=5)
    assert (rt.ddp, rt.rank, rt.world, rt.cuda, rt.master) == (False, 0, 1, False, True)
    assert rt.device == torch.device("cpu") and torch.get_num_threads() == 1
    after_seed = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after_seed, torch.rand(3))


def test_cpu_runtime_is_this_process_alone_on_the_cpu():
    gpu_rank_1 = Runtime(ddp=True, rank=1, world=2, device=torch.device("cuda", 1), cuda=True)
    rt = cpu_runtime(gpu_rank_1)
    assert (rt.ddp, rt.rank, rt.world, rt.cuda, rt.device, rt.master) == (False, 0, 1, False, torch.device("cpu"), True)


def labelled(n):
    return TensorDataset(torch.arange(n).float()[:, None], torch.arange(n))


CFG = {"seed": 3, "batch_size": 4, "workers": 0, "dataset": "fashion-mnist"}
CPU = Runtime(ddp=False, rank=0, world=1, device=torch.device("cpu"), cuda=False)


def order(loader):
    return [int(v) for _, y, _ in loader for v in y]


def test_a_training_loader_shuffles_by_seed_and_epoch_alone_and_drops_the_partial_batch():
    ds = labelled(10)
    first = order(make_loader(ds, CFG, CPU, True, epoch=0))
    assert first == order(make_loader(ds, CFG, CPU, True, epoch=0))  # resumable: the same order again
    assert first != order(make_loader(ds, CFG, CPU, True, epoch=1))
    assert len(first) == 8 and len(set(first)) == 8  # two full batches of 4; the last 2 images wait an epoch
    assert order(make_loader(labelled(3), CFG, CPU, True, 0)) != []  # no full batch at all: the partial one is kept


def test_an_evaluation_loader_keeps_every_image_in_order_with_a_skip_count():
    batches = list(make_loader(labelled(10), CFG, CPU, False, 0))
    assert [int(v) for _, y, _ in batches for v in y] == list(range(10))
    assert [skipped for _, _, skipped in batches] == [0, 0, 0]


def test_worker_processes_follow_the_flag_the_dataset_and_the_cpus():
    assert loader_workers(dict(CFG, workers=3), CPU) == 3
    assert loader_workers(dict(CFG, workers=-1), CPU) == 0  # Fashion-MNIST is in memory
    assert 1 <= loader_workers(dict(CFG, workers=-1, dataset="/data/flowers"), CPU) <= 8


def test_unwrap_finds_the_network_inside_a_wrapper():
    net = torch.nn.Linear(2, 2)

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.module = net

    assert unwrap(Wrapper()) is net and unwrap(net) is net
