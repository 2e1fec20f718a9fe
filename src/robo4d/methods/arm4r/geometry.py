"""Pose layouts and the SE(3) delta targets of ARM4R's control stage (rotation maths from roma).

robo4d's state (types.STATE) is xyz + quaternion wxyz + gripper (8). ARM4R's control stage reads and
predicts a 10-D layout: xyz + 6-D rotation + gripper. A target k steps ahead is expressed in the current
end-effector frame p_t: translation R_t^T (x_{t+k} - x_t), rotation R_t^T R_{t+k} as 6-D, gripper absolute.

6-D layouts: "columns" is Zhou et al.'s (the first two columns of R); "rows" is what the authors' release
stores (the first two rows, i.e. the columns of R^T). Both are the same continuous representation (of R or
of R^T), so neither learns better; "rows" is the default so that release control checkpoints load as they
are. A checkpoint records its layout in its policy config (`ARM4RConfig.rot6d`).
"""

from __future__ import annotations

from typing import Literal

import roma
import torch

Rot6D = Literal["columns", "rows"]
POSE_DIM = 10  # xyz(3) + 6-D rotation(6) + gripper(1)


def quat_wxyz_to_matrix(quat: torch.Tensor) -> torch.Tensor:
    """(..., 4) wxyz (normalised here) -> (..., 3, 3)."""
    xyzw = torch.cat((quat[..., 1:], quat[..., :1]), dim=-1)
    return roma.unitquat_to_rotmat(xyzw / xyzw.norm(dim=-1, keepdim=True))


def matrix_to_quat_wxyz(rot: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) wxyz with w >= 0 (one of the two equivalent signs, chosen for stable outputs)."""
    xyzw = roma.rotmat_to_unitquat(rot)
    wxyz = torch.cat((xyzw[..., 3:], xyzw[..., :3]), dim=-1)
    return torch.where(wxyz[..., :1] < 0, -wxyz, wxyz)


def matrix_to_6d(rot: torch.Tensor, layout: Rot6D) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): two columns (or rows), each as a contiguous triple."""
    two = rot[..., :, :2].transpose(-1, -2) if layout == "columns" else rot[..., :2, :]  # (..., 2, 3)
    return two.flatten(-2)


def sixd_to_matrix(sixd: torch.Tensor, layout: Rot6D) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) via Gram-Schmidt, so unnormalised network outputs give a valid rotation."""
    cols = roma.special_gramschmidt(sixd.unflatten(-1, (2, 3)).transpose(-1, -2))  # (..., 3, 3)
    return cols if layout == "columns" else cols.transpose(-1, -2)


def state_to_pose10(state: torch.Tensor, layout: Rot6D) -> torch.Tensor:
    """robo4d state (..., 8) xyz + quat wxyz + gripper -> (..., 10) xyz + 6-D + gripper."""
    rot = quat_wxyz_to_matrix(state[..., 3:7])
    return torch.cat((state[..., :3], matrix_to_6d(rot, layout), state[..., 7:8]), dim=-1)


def relative_targets(current: torch.Tensor, future: torch.Tensor, layout: Rot6D) -> torch.Tensor:
    """SE(3) deltas of future poses in the current frame.

    current: (..., 8) robo4d state p_t; future: (..., K, 8) states p_{t+1..t+K} -> (..., K, 10).
    """
    r_t = quat_wxyz_to_matrix(current[..., 3:7]).unsqueeze(-3)  # (..., 1, 3, 3)
    r_k = quat_wxyz_to_matrix(future[..., 3:7])  # (..., K, 3, 3)
    dx = future[..., :3] - current[..., None, :3]  # (..., K, 3)
    trans = (r_t.transpose(-1, -2) @ dx.unsqueeze(-1)).squeeze(-1)  # (..., K, 3)
    rot = matrix_to_6d(r_t.transpose(-1, -2) @ r_k, layout)  # (..., K, 6)
    return torch.cat((trans, rot, future[..., 7:8]), dim=-1)


def compose_targets(current: torch.Tensor, deltas: torch.Tensor, layout: Rot6D) -> torch.Tensor:
    """Inverse of `relative_targets`: current (..., 8) and deltas (..., K, 10) -> absolute states (..., K, 8)."""
    r_t = quat_wxyz_to_matrix(current[..., 3:7]).unsqueeze(-3)  # (..., 1, 3, 3)
    xyz = current[..., None, :3] + (r_t @ deltas[..., :3].unsqueeze(-1)).squeeze(-1)  # (..., K, 3)
    rot = r_t @ sixd_to_matrix(deltas[..., 3:9], layout)  # (..., K, 3, 3)
    return torch.cat((xyz, matrix_to_quat_wxyz(rot), deltas[..., 9:10]), dim=-1)
