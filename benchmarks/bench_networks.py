"""Benchmark of the Phase 2 networks and the featurizer cache on a bundled gridworld.

Per network (neural and tabular backend): forward + backward of one training-step-equivalent batch (batch
64 states drawn with replacement from the world's reachable states; V_h^e with one (human, goal) query per
state and human, as the learner does), the Adam step, and a no-grad eval-mode forward over 512 states (what
target computations cost). Featurizer: states/s of the raw grid encoder, the featurizer without cache, with a
warm cache, and ``batch_from_ids`` with a warm cache (batches of 64).

    python benchmarks/bench_networks.py [--world trivial] [--hidden 256] [--batch 64] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from humanpower.encoders import grid_encoders
from humanpower.learn.config import Phase2Config
from humanpower.learn.encoding import Featurizer, StateBatch
from humanpower.learn.networks import Phase2Networks, build_networks, goal_feature_tables
from humanpower.worlds.grid.library import load_world, reachable_states


def timeit(fn: Callable[[], object], min_time: float = 0.4, repeats: int = 5) -> float:
    """Median seconds per call over ``repeats`` rounds of at least ``min_time / repeats`` each."""
    for _ in range(3):
        fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(min_time / repeats / one))
    rounds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - t0) / n)
    return statistics.median(rounds)


def network_steps(
    nets: Phase2Networks,
    batch: StateBatch,
    big: StateBatch,
    num_goals: tuple[int, ...],
    rng: np.random.Generator,
) -> dict[str, dict[str, float]]:
    """Per network: forward+backward, Adam step, and no-grad eval forward times (microseconds)."""
    n_humans = len(num_goals)
    b = len(batch)
    humans = torch.arange(n_humans).repeat(b)
    goals = torch.tensor(
        np.concatenate([rng.integers(0, g, size=(b, 1)) for g in num_goals], axis=1).reshape(-1),
        dtype=torch.long,
    )
    rows = torch.arange(b).repeat_interleave(n_humans)
    loss_fns: dict[str, Callable[[], torch.Tensor]] = {
        "q_r": lambda: nets.q_r(batch).square().mean(),
        "v_h_e": lambda: nets.v_h_e(batch.select(rows), humans, goals).square().mean(),
        "x_h": lambda: nets.x_h.forward_all(batch).square().mean(),
    }
    eval_fns: dict[str, Callable[[], torch.Tensor]] = {
        "q_r": lambda: nets.q_r(big),
        "v_h_e": lambda: torch.cat([nets.v_h_e.forward_all_goals(big, h) for h in range(n_humans)], dim=1),
        "x_h": lambda: nets.x_h.forward_all(big),
    }
    if nets.u_r is not None:
        u_r = nets.u_r
        loss_fns["u_r"] = lambda: u_r(batch).square().mean()
        eval_fns["u_r"] = lambda: u_r(big)
    if nets.v_r is not None:
        v_r = nets.v_r
        loss_fns["v_r"] = lambda: v_r(batch).square().mean()
        eval_fns["v_r"] = lambda: v_r(big)

    out: dict[str, dict[str, float]] = {}
    for name, module in nets.named().items():
        opt = torch.optim.Adam(module.parameters(), lr=1e-4, weight_decay=1e-5)
        loss_fn = loss_fns[name]

        def fwd_bwd(module: torch.nn.Module = module, loss_fn: Callable[[], torch.Tensor] = loss_fn) -> None:
            module.zero_grad(set_to_none=True)
            loss_fn().backward()

        module.train()
        t_fb = timeit(fwd_bwd)
        fwd_bwd()
        t_opt = timeit(opt.step)
        module.eval()
        with torch.no_grad():
            t_eval = timeit(eval_fns[name])
        module.train()
        out[name] = {
            "params": float(sum(p.numel() for p in module.parameters())),
            "fwd_bwd_us": t_fb * 1e6,
            "adam_us": t_opt * 1e6,
            "eval512_us": t_eval * 1e6,
        }
    return out


def featurizer_rates(world: Any, states: list[Any], batch: int, rng: np.random.Generator) -> dict[str, float]:
    """States/s of the raw encoder and of the featurizer with and without cache (batches of ``batch``)."""
    enc, _ = grid_encoders(world, include_step_count=True)
    batches = [[states[i] for i in rng.integers(0, len(states), size=batch)] for _ in range(50)]
    it = iter(range(1 << 62))

    def cycle(fn: Callable[[list[Any]], object]) -> Callable[[], object]:
        return lambda: fn(batches[next(it) % len(batches)])

    uncached = Featurizer(enc, cache_size=0)
    cached = Featurizer(enc)
    cached.batch(states)  # warm: every reachable state cached
    ids = [cached.intern(bt) for bt in batches]
    out = {
        "encoder": batch / timeit(cycle(enc.encode)),
        "featurizer_uncached": batch / timeit(cycle(uncached.batch)),
        "featurizer_cached": batch / timeit(cycle(cached.batch)),
        "batch_from_ids_cached": batch / timeit(lambda: cached.batch_from_ids(ids[next(it) % len(ids)])),
    }
    out["speedup_cached_vs_uncached"] = out["featurizer_cached"] / out["featurizer_uncached"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="trivial")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    world = load_world(args.world)
    states = sorted(reachable_states(world), key=repr)
    state_enc, goal_encs = grid_encoders(world, include_step_count=True)
    tables = goal_feature_tables(world, goal_encs)
    num_goals = tuple(len(world.goal_set(h)) for h in world.humans)
    cfg = Phase2Config(
        hidden_dim=args.hidden, num_hidden_layers=args.layers, u_r_use_network=True, v_r_use_network=True
    )
    featurizer = Featurizer(state_enc)
    batch = featurizer.batch([states[i] for i in rng.integers(0, len(states), size=args.batch)])
    big = featurizer.batch([states[i] for i in rng.integers(0, len(states), size=512)])

    result: dict[str, Any] = {
        "world": args.world,
        "reachable_states": len(states),
        "state_dim": state_enc.dim,
        "hidden_dim": args.hidden,
        "num_hidden_layers": args.layers,
        "batch": args.batch,
        "distinct_in_batch": len(batch.dedup()[0]),
        "torch_threads": torch.get_num_threads(),
        "networks": {},
    }
    for backend in ("neural", "tabular"):
        nets = build_networks(world, cfg, state_enc.dim, tables, backend, max_states=len(states))
        result["networks"][backend] = network_steps(nets, batch, big, num_goals, rng)
    result["featurizer_states_per_s"] = featurizer_rates(world, states, args.batch, rng)

    if args.json:
        print(json.dumps(result))
        return
    print(
        f"world={result['world']} reachable={result['reachable_states']} state_dim={result['state_dim']} "
        f"hidden={args.hidden}x{args.layers} batch={args.batch} (distinct {result['distinct_in_batch']}) "
        f"threads={result['torch_threads']}"
    )
    print(f"{'backend':8} {'network':6} {'params':>9} {'fwd+bwd us':>11} {'adam us':>9} {'eval512 us':>11}")
    for backend, per_net in result["networks"].items():
        for name, r in per_net.items():
            print(
                f"{backend:8} {name:6} {int(r['params']):9d} {r['fwd_bwd_us']:11.0f} {r['adam_us']:9.0f} "
                f"{r['eval512_us']:11.0f}"
            )
        total = sum(r["fwd_bwd_us"] + r["adam_us"] for r in per_net.values())
        print(f"{backend:8} {'all':6} {'':9} {'':11} {'':9} {'':11}  fwd+bwd+adam total {total:.0f} us")
    print(f"featurizer (states/s, batches of {args.batch}):")
    for k, v in result["featurizer_states_per_s"].items():
        print(f"  {k:28} {v:12.1f}" if "speedup" in k else f"  {k:28} {v:12.0f}")


if __name__ == "__main__":
    main()
