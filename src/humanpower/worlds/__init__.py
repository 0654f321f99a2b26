"""World models: the protocol, the gridworld, the generic tabular world, world files and rendering."""

from humanpower.worlds.protocol import (
    JointAction,
    SimulatedWorld,
    SimulatorModel,
    State,
    Successors,
    WorldModel,
    compose_joint_action,
    decode_robot_action,
    encode_robot_action,
    num_robot_actions,
    robot_action_name,
    sample_successor,
)

__all__ = [
    "JointAction",
    "SimulatedWorld",
    "SimulatorModel",
    "State",
    "Successors",
    "WorldModel",
    "compose_joint_action",
    "decode_robot_action",
    "encode_robot_action",
    "num_robot_actions",
    "robot_action_name",
    "sample_successor",
]
