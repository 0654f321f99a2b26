"""The exact solution: per-state arrays of every quantity of equations (4)-(9), the policy, save/load.

File format (``save``/``load``): one uncompressed ``.npz`` holding
- ``meta``: a JSON string (format version, humans, robots, num_actions, goal names, params, prior name,
  timings, the SHA-256 of the pickled state list);
- ``states_pickle``: the pickled list of states (uint8 bytes), so that ids can be matched back to states
  without rebuilding the DAG. The bytes are only unpickled after their SHA-256 matches ``meta``; as with any
  pickle, load only files you trust;
- the arrays ``terminal``, ``level_offsets``, ``q_r``, ``pi_r``, ``v_r``, ``u_r``, ``x_h``, ``v_h_e_<i>``,
  ``goal_weights_<i>``.
``load(path, world)`` checks the file against ``world`` (agents, actions, goal names, initial state) and
raises :class:`humanpower.errors.CheckpointError` on any mismatch or corruption.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import zipfile
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from humanpower.errors import CheckpointError
from humanpower.exact.dag import StateDag
from humanpower.humans.protocol import HumanPolicyPrior
from humanpower.params import ParameterError, TheoryParams
from humanpower.worlds.protocol import State, WorldModel

FloatArray = NDArray[np.float64]
FORMAT_VERSION = 1
POWER_LAW = "power law (5)"
"""``ExactSolution.robot_policy`` of the solver's own solution."""


@dataclass
class ExactSolution:
    """Per-state values of the exact solver; arrays are indexed by state id (``state_id(state)``).

    Attributes:
        q_r, pi_r: (N, A_r) robot Q values and power-law policy (NaN / uniform at terminal states).
        v_r, u_r: (N,) robot value and intrinsic reward (V_r = terminal_v_r, U_r = NaN at terminal states).
        x_h: (N, H) human power per human (``humans`` order); 0 at terminal states.
        v_h_e: per human an (N, G_h) array of goal-reaching values V_h^e (0 at terminal states).
        terminal: (N,) mask; level_offsets: ids of each step level (see :class:`StateDag`).
        prior: the human prior used (not saved; None after ``load``).
        dag: the state DAG the values were computed on (not saved; None after ``load``).
        robot_policy: which robot policy the values belong to: ``POWER_LAW`` for the solver's pi_r (5), any
            other name for a policy evaluated by :func:`humanpower.exact.evaluate.evaluate_policy`.
    """

    states: list[State]
    index: dict[State, int]
    terminal: NDArray[np.bool_]
    level_offsets: NDArray[np.int64]
    humans: tuple[int, ...]
    robots: tuple[int, ...]
    num_actions: int
    goal_names: list[list[str]]
    goal_weights: list[FloatArray]
    q_r: FloatArray
    pi_r: FloatArray
    v_r: FloatArray
    u_r: FloatArray
    x_h: FloatArray
    v_h_e: list[FloatArray]
    params: TheoryParams
    human_prior: str
    timings: dict[str, float] = field(default_factory=dict)
    prior: HumanPolicyPrior | None = field(default=None, repr=False)
    dag: StateDag | None = field(default=None, repr=False)
    robot_policy: str = POWER_LAW

    @property
    def num_states(self) -> int:
        return len(self.states)

    @property
    def num_robot_actions(self) -> int:
        return int(self.q_r.shape[1])

    def state_id(self, state: Hashable) -> int:
        """The id of ``state``; KeyError if it is not a reachable state of the solved world."""
        sid = self.index.get(state)
        if sid is None:
            raise KeyError(f"state {state!r} is not a reachable state of the solved world")
        return sid

    def values_at(self, state: Hashable) -> dict[str, Any]:
        """All values at ``state`` as plain Python numbers (NaN where undefined, i.e. at terminal states)."""
        i = self.state_id(state)
        x = [float(v) for v in self.x_h[i]]
        return {
            "terminal": bool(self.terminal[i]),
            "V_r": float(self.v_r[i]),
            "U_r": float(self.u_r[i]),
            "Q_r": [float(v) for v in self.q_r[i]],
            "pi_r": [float(v) for v in self.pi_r[i]],
            "X_h": x,
            "W_h": [math.log2(v) if v > 0 else -math.inf for v in x],
            "V_h_e": [
                {name: float(v) for name, v in zip(names, arr[i], strict=True)}
                for names, arr in zip(self.goal_names, self.v_h_e, strict=True)
            ],
        }

    def action_distributions(self, states: Sequence[Hashable]) -> FloatArray:
        """pi_r rows of ``states`` (copies): the solution as a :class:`~humanpower.worlds.protocol.RobotPolicy`.

        Raises KeyError for a state that is not a reachable state of the solved world.
        """
        out: FloatArray = self.pi_r[[self.state_id(s) for s in states]]
        return out.reshape(len(states), self.pi_r.shape[1])

    # -- persistence --------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the solution to one ``.npz`` file (module docs)."""
        blob = pickle.dumps(self.states, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {
            "format": FORMAT_VERSION,
            "humans": list(self.humans),
            "robots": list(self.robots),
            "num_actions": self.num_actions,
            "goal_names": self.goal_names,
            "params": self.params.to_dict(),
            "human_prior": self.human_prior,
            "robot_policy": self.robot_policy,
            "timings": self.timings,
            "states_sha256": hashlib.sha256(blob).hexdigest(),
            "num_states": self.num_states,
        }
        arrays: dict[str, Any] = {
            "meta": np.array(json.dumps(meta)),
            "states_pickle": np.frombuffer(blob, dtype=np.uint8),
            "terminal": self.terminal,
            "level_offsets": self.level_offsets,
            "q_r": self.q_r,
            "pi_r": self.pi_r,
            "v_r": self.v_r,
            "u_r": self.u_r,
            "x_h": self.x_h,
        }
        for i, (v, w) in enumerate(zip(self.v_h_e, self.goal_weights, strict=True)):
            arrays[f"v_h_e_{i}"] = v
            arrays[f"goal_weights_{i}"] = w
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path, world: WorldModel) -> ExactSolution:
        """Read a file written by :meth:`save` and check that it belongs to ``world``."""
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"{p}: no such solution file")
        try:
            with np.load(p, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise CheckpointError(f"{p}: not a readable solution file ({exc})") from exc
        try:
            meta = json.loads(str(arrays["meta"]))
            if meta.get("format") != FORMAT_VERSION:
                raise CheckpointError(f"{p}: unsupported solution format {meta.get('format')!r}")
            blob = arrays["states_pickle"].tobytes()
            if hashlib.sha256(blob).hexdigest() != meta["states_sha256"]:
                raise CheckpointError(f"{p}: corrupt solution file (state list checksum mismatch)")
            states = pickle.loads(blob)
            n_h = len(meta["humans"])
            sol = cls(
                states=states,
                index={s: i for i, s in enumerate(states)},
                terminal=arrays["terminal"].astype(bool),
                level_offsets=arrays["level_offsets"].astype(np.int64),
                humans=tuple(meta["humans"]),
                robots=tuple(meta["robots"]),
                num_actions=int(meta["num_actions"]),
                goal_names=[list(g) for g in meta["goal_names"]],
                goal_weights=[arrays[f"goal_weights_{i}"] for i in range(n_h)],
                q_r=arrays["q_r"],
                pi_r=arrays["pi_r"],
                v_r=arrays["v_r"],
                u_r=arrays["u_r"],
                x_h=arrays["x_h"],
                v_h_e=[arrays[f"v_h_e_{i}"] for i in range(n_h)],
                params=TheoryParams(**meta["params"]),
                human_prior=str(meta["human_prior"]),
                robot_policy=str(meta.get("robot_policy", POWER_LAW)),
                timings={k: float(v) for k, v in meta.get("timings", {}).items()},
            )
        except CheckpointError:
            raise
        except (
            KeyError,
            TypeError,
            ValueError,
            ParameterError,
            pickle.UnpicklingError,
            AttributeError,
        ) as exc:
            raise CheckpointError(f"{p}: corrupt solution file ({type(exc).__name__}: {exc})") from exc
        sol._check(p, world)
        return sol

    def _check(self, path: Path, world: WorldModel) -> None:
        n = self.num_states
        problems = []
        if self.humans != tuple(world.humans) or self.robots != tuple(world.robots):
            problems.append(
                f"agents differ (file: humans {self.humans}, robots {self.robots}; world: humans "
                f"{tuple(world.humans)}, robots {tuple(world.robots)})"
            )
        elif self.num_actions != world.num_actions:
            problems.append(f"num_actions differs (file {self.num_actions}, world {world.num_actions})")
        else:
            names = [[str(g) for g in world.goal_set(h).goals] for h in world.humans]
            if names != self.goal_names:
                problems.append("goal sets differ")
            if n == 0 or self.states[0] != world.initial_state():
                problems.append("initial state differs")
        shapes_ok = (
            self.terminal.shape == (n,)
            and self.v_r.shape == (n,)
            and self.u_r.shape == (n,)
            and self.q_r.shape == self.pi_r.shape
            and self.q_r.shape[0] == n
            and self.x_h.shape == (n, len(self.humans))
            and all(v.shape == (n, len(g)) for v, g in zip(self.v_h_e, self.goal_names, strict=True))
        )
        if not shapes_ok:
            problems.append("array shapes do not match the state count")
        if problems:
            raise CheckpointError(f"{path}: solution does not match this world: {'; '.join(problems)}")
