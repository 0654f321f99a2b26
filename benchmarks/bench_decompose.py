"""Where a learned policy's error comes from: each network of a default-rule run against the exact solver.

Usage::

    python benchmarks/bench_decompose.py WORLD ENV_STEPS [--seed 0] [--set FIELD=VALUE ...]

Trains ``humanpower.api.auto_config(world, budget_env_steps=ENV_STEPS)`` (the rule at a fixed env-step budget,
so runs compare at equal data whatever the machine's load; ``--set`` overrides derived fields, e.g.
``--set batch_size=256``), then prints

- the policy metrics of ``humanpower eval`` (pi_r RMSE, argmax agreement, ``policy_gap_closed``);
- per depth (step count): states, pi_r RMSE of the learned and the uniform policy, RMS error of the logits
  beta_r log(-Q_r) (centred per state), relative errors of V_r and U_r, mean absolute errors of X_h and V_h^e;
- X_h computed from the learned V_h^e by (7) against the X_h network (which part of X_h's error is its own);
- the pi_r RMSE of a one-step lookahead policy: (5) on Q_r = gamma_r E[V_r(s')] from the learned V_r at the
  successors, and from V_r with the exact U_r or with the exact pi_r . Q_r put in. When the lookahead is about
  as good as the network, the Q_r network's own fit is not the bottleneck; the substitution that shrinks the
  lookahead error most names the component of V_r that is.

Small worlds only (the exact solution and a Python loop over every reachable state's transitions).
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

import numpy as np
import yaml

from humanpower.api import auto_config, load_world, train
from humanpower.equations import power_law_policy
from humanpower.exact import ExactSolution, visit_probabilities
from humanpower.learn.evaluate import compare_with_exact, policy_quality
from humanpower.worlds.protocol import WorldModel, compose_joint_action, num_robot_actions

LOOKAHEAD_STATES = 3000
"""Most states (a random subset beyond) the one-step lookahead is computed at."""


def lookahead_policy(
    world: WorldModel, sol: ExactSolution, values: np.ndarray, ids: np.ndarray, gamma_r: float, beta_r: float
) -> np.ndarray:
    """(5) at the states ``ids`` on Q_r(s, a_r) = gamma_r E_{a_H ~ goal marginals} E_{s'} values[s']."""
    assert sol.prior is not None
    a_r = num_robot_actions(world)
    q = np.zeros((len(ids), a_r))
    for row, sid in enumerate(ids):
        s = sol.states[sid]
        marginals = [np.asarray(sol.prior.marginal_distribution(s, h)) for h in world.humans]
        for acts in itertools.product(*[np.flatnonzero(m > 0) for m in marginals]):
            p = float(np.prod([marginals[h][a] for h, a in enumerate(acts)]))
            for r in range(a_r):
                for pr, s2 in world.transition_probabilities(s, compose_joint_action(world, [int(a) for a in acts], r)):
                    q[row, r] += p * pr * values[sol.index[s2]]
    return power_law_policy(gamma_r * q, beta_r)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("world")
    parser.add_argument("env_steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="override derived fields")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"seed": args.seed}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    world = load_world(args.world)
    cpu0 = time.process_time()
    auto, setup = auto_config(world, overrides, budget_env_steps=args.env_steps)
    cfg, sol = auto.config, setup.reference
    if sol is None:
        parser.error(f"{args.world}: too large for the exact solver")
    print("config:", auto.summary())
    model = train(world, cfg, setup=setup).model
    m, q = compare_with_exact(model, sol), policy_quality(model, sol, world)
    ratio = m["pi_r_rmse"] / q["uniform_pi_r_rmse"]
    print(
        f"{args.world} env steps {cfg.total_env_steps} CPU s {time.process_time() - cpu0:.0f}: pi_r RMSE "
        f"{m['pi_r_rmse']:.4f} (uniform {q['uniform_pi_r_rmse']:.4f}, ratio {ratio:.2f}),"
        f" on-policy {q['pi_r_rmse_on_policy']:.4f}, argmax {m['argmax_agreement']:.3f} (on-policy "
        f"{q['argmax_agreement_on_policy']:.3f}), gap closed {q['policy_gap_closed']:.3f}"
    )
    live = np.flatnonzero(~sol.terminal)
    states = [sol.states[i] for i in live]
    lv = model.evaluate(states, with_v_h_e=True)
    pi, pi_ex = lv["pi_r"], sol.pi_r[live]
    depth = np.array([world.step_count(s) for s in states])
    visits = visit_probabilities(world, sol.dag, sol.prior, sol)[live]

    def centred_log(qv: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.log(-qv)
        return out - out.mean(axis=1, keepdims=True)

    logit = cfg.beta_r * np.sqrt(((centred_log(lv["q_r"]) - centred_log(sol.q_r[live])) ** 2).mean(axis=1))
    rel = {k: np.abs(lv[k] - getattr(sol, k)[live]) / np.abs(getattr(sol, k)[live]) for k in ("v_r", "u_r")}
    x_err = np.abs(lv["x_h"] - sol.x_h[live]).mean(axis=1)
    humans = range(len(world.humans))
    v_err = np.mean([np.abs(lv[f"v_h_e_{i}"] - sol.v_h_e[i][live]).mean(axis=1) for i in humans], axis=0)
    sq, usq = ((pi - pi_ex) ** 2).mean(axis=1), ((pi_ex - 1.0 / pi_ex.shape[1]) ** 2).mean(axis=1)
    print("depth states visits  RMSE uniform logits  V_r rel U_r rel X_h err V_h^e err")
    for d in np.unique(depth):
        k = depth == d
        print(
            f"{d:>5} {k.sum():>6} {visits[k].sum():6.2f} {np.sqrt(sq[k].mean()):.3f} {np.sqrt(usq[k].mean()):7.3f}"
            f" {logit[k].mean():6.3f} {rel['v_r'][k].mean():8.3f} {rel['u_r'][k].mean():7.3f}"
            f" {x_err[k].mean():7.3f} {v_err[k].mean():9.3f}"
        )
    weights = [np.asarray(world.goal_set(h).weights, dtype=np.float64) for h in world.humans]
    x_from_v = np.stack([(w[None, :] * lv[f"v_h_e_{i}"] ** cfg.zeta).sum(axis=1) for i, w in enumerate(weights)], 1)
    print(
        f"X_h MAE: network {x_err.mean():.4f}, "
        f"computed from the learned V_h^e {np.abs(x_from_v - sol.x_h[live]).mean():.4f}"
    )
    every = model.evaluate(sol.states)
    u_ex, v_ex = np.nan_to_num(sol.u_r), np.nan_to_num(sol.v_r)
    variants = {
        "learned V_r": every["v_r"],
        "exact U_r + learned pi_r . Q_r": u_ex + (every["pi_r"] * every["q_r"]).sum(axis=1),
        "learned U_r + exact pi_r . Q_r": every["u_r"] + (v_ex - u_ex),
    }
    rng = np.random.default_rng(0)
    ids = live if len(live) <= LOOKAHEAD_STATES else np.sort(rng.choice(live, LOOKAHEAD_STATES, replace=False))
    pos = np.searchsorted(live, ids)
    print(f"pi_r RMSE at {len(ids)} states: network {np.sqrt(((pi[pos] - pi_ex[pos]) ** 2).mean()):.4f}")
    for name, values in variants.items():
        v = np.where(sol.terminal, cfg.terminal_v_r, values)
        look = lookahead_policy(world, sol, v, ids, cfg.gamma_r, cfg.beta_r)
        print(f"  one-step lookahead on {name}: {np.sqrt(((look - pi_ex[pos]) ** 2).mean()):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
