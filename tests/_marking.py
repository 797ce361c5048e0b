"""A tiny marking network and key on disk, for the tests of publishing marked copies (catalog, API, CLI).

``write_marking(folder, seed=0)`` saves a random-weight :class:`~roomscan.radioactive.MarkingNetwork` (widths 8, 16:
16 features, 32 px) and a one-carrier :class:`~roomscan.radioactive.MarkingKey` made with it, and returns their
paths. Random weights are enough here: these tests check what is stored and served, not detection power.
"""

from __future__ import annotations

from pathlib import Path

PSNR_FLOOR = 42.0


def write_marking(folder: Path, *, seed: int = 0, names: tuple[str, ...] = ("published",)) -> tuple[Path, Path]:
    import torch

    from roomscan.radioactive import MarkingKey, MarkingNetwork, NetworkConfig, random_carriers
    from roomscan.radioactive.network import network_identity, save_network

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    network = MarkingNetwork(NetworkConfig(widths=(8, 16), image_size=32)).eval()
    net_path = save_network(network, folder / "marker.pt")
    key = MarkingKey.new(random_carriers(len(names), 16, seed=seed), names, network_identity(network), seed=seed,
                         psnr_floor=PSNR_FLOOR)
    return key.save(folder / "key.npz"), net_path
