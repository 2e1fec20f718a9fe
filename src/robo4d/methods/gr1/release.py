"""Import of the authors' released GR-1 checkpoint (e.g. `snapshot_ABCD.pt`) into a `gr1-release` policy.

A release file is `torch.save({"state_dict": model.state_dict(), ...})` of their `GR1` module. Its tensors:
    transformer.h.{i}.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}, transformer.ln_f
        -> model.trunk.* ; GPT-2's Conv1D stores weights as (in, out): the four projection weights are
           transposed into nn.Linear's (out, in)
    perceiver_resampler.*                    -> model.resampler.*  (identical names below the prefix)
    embed_{arm_state, gripper_state, state, lang, timestep, ln}, action_queries -> model.<same name>
    embed_img / embed_hand_img               -> model.embed_img.0 / .1    (static / wrist camera slot)
    embed_patch / embed_hand_patch           -> model.embed_patch.0 / .1
    obs_queries / obs_hand_queries           -> model.obs_queries.0 / .1
    pred_act_mlps.{0,1}, pred_arm_act, pred_gripper_act -> model.action_head.mlp.{0,1}, .arm, .gripper
    decoder_embed, decoder_blocks, decoder_norm, decoder_pred -> model.decoder.<same name>
    mask_token (1, 1, 1, D)                  -> model.decoder.mask_token (1, 1, D)
Named and not loaded, each for a stated reason:
    transformer.h.{i}.attn.bias, .masked_bias   GPT-2's causal-mask buffers; robo4d builds its mask
    transformer.wte.weight                      a 1-token word embedding the model never reads
    decoder_pos_embed                           fixed 2-D sin-cos positions: checked equal to robo4d's
    model_clip.*, model_mae.*                   the frozen CLIP and MAE; robo4d rebuilds frozen encoders from
                                                the weight files its config names (text_weights, image_weights)
Any other key, a policy tensor the file lacks, or a shape mismatch is one error listing every case (the
release loads with strict=False and never looks at the result).
To run release weights as trained, use `preset("gr1-release")` with `action_mlp_activation=False`.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from robo4d.methods.gr1.policy import GR1Policy
from robo4d.nn.encoders.weights import read_state_dict

FROZEN_PREFIXES = ("model_clip.", "model_mae.")
IGNORED = re.compile(r"transformer\.h\.\d+\.attn\.(bias|masked_bias)|transformer\.wte\.weight")
POS_EMBED = "decoder_pos_embed"
CONV1D = re.compile(r"transformer\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight")
RENAMES = (  # release prefix -> robo4d policy prefix (first match wins)
    ("transformer.", "model.trunk."),
    ("perceiver_resampler.", "model.resampler."),
    ("embed_hand_img.", "model.embed_img.1."),
    ("embed_img.", "model.embed_img.0."),
    ("embed_hand_patch.", "model.embed_patch.1."),
    ("embed_patch.", "model.embed_patch.0."),
    ("obs_hand_queries.", "model.obs_queries.1."),
    ("obs_queries.", "model.obs_queries.0."),
    ("pred_act_mlps.", "model.action_head.mlp."),
    ("pred_arm_act.", "model.action_head.arm."),
    ("pred_gripper_act.", "model.action_head.gripper."),
    ("mask_token", "model.decoder.mask_token"),
    ("decoder_", "model.decoder.decoder_"),
    ("embed_arm_state.", "model.embed_arm_state."),
    ("embed_gripper_state.", "model.embed_gripper_state."),
    ("embed_state.", "model.embed_state."),
    ("embed_lang.", "model.embed_lang."),
    ("embed_timestep.", "model.embed_timestep."),
    ("embed_ln.", "model.embed_ln."),
    ("action_queries.", "model.action_queries."),
)


def split_release_state(
    state: dict[str, torch.Tensor], *, where: str
) -> tuple[dict[str, tuple[str, torch.Tensor]], dict[str, torch.Tensor], torch.Tensor | None]:
    """(policy name -> (file name, tensor in the policy's layout), frozen-encoder tensors, decoder_pos_embed or
    None); keys outside the layout raise, listing all of them."""
    mapped, frozen, unknown = {}, {}, []
    for key, value in state.items():
        if key.startswith(FROZEN_PREFIXES):
            frozen[key] = value
        elif IGNORED.fullmatch(key) or key == POS_EMBED:
            continue
        else:
            new = next((dst + key[len(src) :] for src, dst in RENAMES if key.startswith(src)), None)
            if new is None:
                unknown.append(key)
                continue
            if CONV1D.fullmatch(key):
                value = value.t()
            elif key == "mask_token":
                value = value.reshape(1, 1, -1)
            mapped[new] = (key, value)
    if unknown:
        raise ValueError(f"{where}: {len(unknown)} key(s) outside the GR-1 release layout: {sorted(unknown)}")
    return mapped, frozen, state.get(POS_EMBED)


def read_release_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a release file ({'state_dict': ...} or a bare state dict), float32 on the CPU."""
    state = read_state_dict(path, subkey="state_dict")
    return {k: v.float() for k, v in state.items()}


def load_release_state(policy: GR1Policy, state: dict[str, torch.Tensor], *, where: str) -> dict[str, torch.Tensor]:
    """Load a release state dict into `policy` strictly; returns the frozen-encoder tensors it held (keys
    `model_clip.*` / `model_mae.*`) for a caller that wants to check or export them."""
    mapped, frozen, pos = split_release_state(state, where=where)
    own = policy.state_dict()
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(f"{src} (as {k})" for k, (src, _) in mapped.items() if k not in own)
    shapes = sorted(
        f"{k}: file {src} {tuple(v.shape)} vs policy {tuple(own[k].shape)}"
        for k, (src, v) in mapped.items()
        if k in own and v.shape != own[k].shape
    )
    problems = [f"missing {missing}"] * bool(missing) + [f"unexpected {unexpected}"] * bool(unexpected)
    problems += [f"shape mismatch {shapes}"] * bool(shapes)
    if pos is not None and hasattr(policy.model, "decoder"):
        ours = policy.model.decoder.pos_embed
        if pos.shape != ours.shape or not torch.allclose(pos.float(), ours.cpu(), atol=1e-5):
            problems.append(f"{POS_EMBED} {tuple(pos.shape)} differs from robo4d's 2-D sin-cos positions")
    elif (pos is None) == hasattr(policy.model, "decoder"):
        problems.append(f"{POS_EMBED} {'missing' if pos is None else 'present without a frame decoder'}")
    if problems:
        raise ValueError(
            f"{where}: does not fit this GR-1 config ({'; '.join(problems)}); the release needs "
            "preset('gr1-release') (finetune, video_loss=True)"
        )
    policy.load_state_dict({k: v for k, (_, v) in mapped.items()}, strict=True)
    return frozen


def load_release_checkpoint(policy: GR1Policy, path: str | Path) -> dict[str, torch.Tensor]:
    """Read a release file and load it into `policy` strictly (see `load_release_state`)."""
    return load_release_state(policy, read_release_checkpoint(path), where=str(path))
