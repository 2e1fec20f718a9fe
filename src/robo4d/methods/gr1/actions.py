"""GR-1's state inputs and action targets on robo4d's end-effector state (rotation maths from roma).

robo4d's state (types.STATE) is xyz + quaternion wxyz + gripper opening in [0, 1] (1 = open).
- State input, as the release's split: arm (6) = xyz + the hand's rotation vector (the release feeds xyz +
  Euler angles; a rotation vector has no gimbal lock), gripper as a one-hot (open, closed).
- Action targets are relative, as the release's "ee_rel_pose" mode: row k of step t is the pose p_{t+1+k}
  relative to the current pose p_t, in the world frame: (x_{t+1+k} - x_t) * s_pos and
  rotvec(R_{t+1+k} R_t^T) * s_rot, scaled to about unit size (CALVIN's scales 50 per metre and 20 per radian,
  so Smooth-L1's quadratic zone covers the typical step) and the gripper's open/closed state at t+1+k.
- Predictions are composed onto the observed current pose into absolute `ACTION_EEF_POSE` rows, the form the
  runtime blends and tracks; the gripper row carries P(open), which the runtime binarises.
Why deltas and not absolute poses: a delta is about the same size everywhere in the workspace and needs no
dataset statistics, and the release was trained and evaluated this way.
"""

from __future__ import annotations

import roma
import torch


def _xyzw(quat_wxyz: torch.Tensor) -> torch.Tensor:
    q = torch.cat((quat_wxyz[..., 1:], quat_wxyz[..., :1]), dim=-1)
    return q / q.norm(dim=-1, keepdim=True)


def rotation(state: torch.Tensor) -> torch.Tensor:
    """(..., 8) state -> (..., 3, 3) hand rotation."""
    return roma.unitquat_to_rotmat(_xyzw(state[..., 3:7]))


def gripper_open(state: torch.Tensor, threshold: float) -> torch.Tensor:
    """(..., 8) -> (...) bool: the gripper opening is at least `threshold`."""
    return state[..., 7] >= threshold


def state_inputs(state: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 8) state -> arm (..., 6) xyz + rotation vector, gripper one-hot (..., 2) (open, closed)."""
    arm = torch.cat((state[..., :3], roma.unitquat_to_rotvec(_xyzw(state[..., 3:7]))), dim=-1)
    is_open = gripper_open(state, threshold).to(state.dtype)
    return arm, torch.stack((is_open, 1 - is_open), dim=-1)


def delta_targets(
    current: torch.Tensor, future: torch.Tensor, scale: tuple[float, float], threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """current (..., 8) p_t; future (..., K, 8) p_{t+1..t+K} -> arm (..., K, 6) scaled deltas, open (..., K) bool."""
    dx = (future[..., :3] - current[..., None, :3]) * scale[0]  # (..., K, 3)
    rel = rotation(future) @ rotation(current).unsqueeze(-3).transpose(-1, -2)  # (..., K, 3, 3) R_k R_t^T
    return torch.cat((dx, roma.rotmat_to_rotvec(rel) * scale[1]), dim=-1), gripper_open(future, threshold)


def compose(
    current: torch.Tensor, arm: torch.Tensor, open_prob: torch.Tensor, scale: tuple[float, float]
) -> torch.Tensor:
    """Inverse of `delta_targets`: current (..., 8), arm (..., K, 6), P(open) (..., K) -> absolute (..., K, 8)."""
    xyz = current[..., None, :3] + arm[..., :3] / scale[0]  # (..., K, 3)
    rot = roma.rotvec_to_rotmat(arm[..., 3:] / scale[1]) @ rotation(current).unsqueeze(-3)  # (..., K, 3, 3)
    xyzw = roma.rotmat_to_unitquat(rot)
    wxyz = torch.cat((xyzw[..., 3:], xyzw[..., :3]), dim=-1)
    wxyz = torch.where(wxyz[..., :1] < 0, -wxyz, wxyz)  # one of the two equal signs, for stable outputs
    return torch.cat((xyz, wxyz, open_prob[..., None]), dim=-1)
