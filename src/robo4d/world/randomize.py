"""Domain-randomised clips of the world with exact 2D tracks: training data for the learned point tracker.

Real video differs from the clean world in texture, light, camera motion and image quality, so each clip draws
(from its own seed) what a tracker must not rely on:
- scene: procedural textures (noise, stripes, checkers, blobs) and random colours on table, walls, floor and
  objects; light colour, intensity and direction;
- camera: head shake up to several times the world's default, and fast motion by keeping every k-th step;
- image: motion blur along the clip's dominant motion, sensor noise, gamma/contrast, and a JPEG or h264
  round trip;
- distractor occluders: textured shapes sliding over the image; the points they cover become invisible.
Scene and camera changes happen before rendering, so the ground truth (from body poses, see `world.tracks`)
stays exact; image changes keep every pixel where it was, and occluders update visibility themselves.

A clip file (`save_clip`) holds frames (T, H, W, 3) uint8, uv (T, N, 2) float32 pixels (continuous convention,
see `extract.queries`) and visible (T, N) bool of the GxG grid anchored on frame 0 (never-seen queries are
invisible throughout).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robo4d import types
from robo4d.world import tasks

CLIP_SEED_BASE = 2_000_000  # clip group g uses env seed CLIP_SEED_BASE + g: never a demo or eval seed


@dataclass(frozen=True, kw_only=True)
class RandomizeConfig:
    """Ranges the per-clip randomisation draws from; `enabled=False` renders the plain world."""

    enabled: bool = True
    shake_scale: tuple[float, float] = (1.0, 6.0)  # multiplier on the world's per-frame head shake
    max_stride: int = 4  # keep every k-th recorded step, k uniform in [1, max_stride] (fast motion)
    max_occluders: int = 3  # distractor shapes per clip, uniform in [0, max_occluders]
    noise_std: tuple[float, float] = (0.0, 8.0)  # Gaussian sensor noise, uint8 levels
    jpeg_quality: tuple[int, int] = (25, 95)
    h264_crf: tuple[int, int] = (20, 40)
    blur_prob: float = 0.5  # share of clips with motion blur

    def __post_init__(self) -> None:
        if self.max_stride < 1 or self.max_occluders < 0 or not 0 <= self.blur_prob <= 1:
            raise ValueError(f"RandomizeConfig has out-of-range values: {self}")
        for name in ("shake_scale", "noise_std", "jpeg_quality", "h264_crf"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"RandomizeConfig.{name} must be (lo, hi) with 0 <= lo <= hi, got {(lo, hi)}")


@dataclass(frozen=True)
class Clip:
    frames: np.ndarray  # (T, H, W, 3) uint8
    uv: np.ndarray  # (T, N, 2) float32 pixels
    visible: np.ndarray  # (T, N) bool


def save_clip(path: Path, clip: Clip) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, frames=clip.frames, uv=clip.uv, visible=clip.visible)
    tmp.replace(path)


def load_clip(path: Path) -> Clip:
    with np.load(path) as f:
        return Clip(f["frames"], f["uv"], f["visible"])


# --- scene ---------------------------------------------------------------------------------------------------


def _procedural_texture(rng: np.random.Generator, height: int, width: int, channels: int) -> np.ndarray:
    """(H, W, C) uint8: one of a few texture families in two random colours, with fine grain on top."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(4)
    if kind == 0:  # smooth value noise
        coarse = rng.random((rng.integers(4, 24), rng.integers(4, 24))).astype(np.float32)
        import cv2

        mix = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # stripes at a random angle and period
        angle, period = rng.uniform(0, np.pi), rng.uniform(8, 64)
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    elif kind == 2:  # checkers
        cell = rng.integers(8, 64)
        mix = ((xx // cell + yy // cell) % 2).astype(np.float32)
    else:  # blobs
        mix = np.zeros((height, width), np.float32)
        for _ in range(rng.integers(10, 60)):
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(4, max(width, height) / 6)
            mix = np.maximum(mix, ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r).astype(np.float32))
    mix = np.clip(mix + rng.normal(0, rng.uniform(0.02, 0.25), mix.shape), 0, 1)[..., None]  # grain
    a, b = rng.integers(0, 256, (2, channels))
    return (a * (1 - mix) + b * mix).astype(np.uint8)


def randomize_scene(env: object, rng: np.random.Generator) -> None:
    """Re-texture, re-colour and re-light a `WorldEnv` in place (after construction, before the first render)."""
    from robo4d.world._mujoco import mujoco

    model = env.model
    renderer = env._renderer
    hand = env.hand_bodies
    for g in range(model.ngeom):
        if model.geom_bodyid[g] in hand:
            shade = rng.uniform(0.6, 1.2)  # a range of skin tones and gloves, not one colour
            model.geom_rgba[g, :3] = np.clip(model.geom_rgba[g, :3] * shade + rng.normal(0, 0.05, 3), 0, 1)
        elif rng.random() < 0.7:
            model.geom_rgba[g, :3] = rng.random(3)
    for m in range(model.nmat):
        model.mat_rgba[m, :3] = rng.uniform(0.4, 1.0, 3)
    for t in range(model.ntex):
        h, w, c = int(model.tex_height[t]), int(model.tex_width[t]), int(model.tex_nchannel[t])
        start = int(model.tex_adr[t])
        model.tex_data[start : start + h * w * c] = _procedural_texture(rng, h, w, c).ravel()
    renderer._gl_context.make_current()
    for t in range(model.ntex):
        mujoco.mjr_uploadTexture(model, renderer._mjr_context, t)
    for light in range(model.nlight):
        model.light_diffuse[light] = rng.uniform(0.2, 1.0) * rng.uniform(0.7, 1.0, 3)
        model.light_dir[light] = model.light_dir[light] + rng.normal(0, 0.3, 3)
    model.vis.headlight.ambient[:] = rng.uniform(0.0, 0.4, 3)
    model.vis.headlight.diffuse[:] = rng.uniform(0.1, 0.6, 3)


# --- rendering -----------------------------------------------------------------------------------------------


def render_clips(task: str, seed: int, *, count: int, image_size: int, steps: int, grid: int,
                 config: RandomizeConfig) -> list[Clip]:  # fmt: skip
    """`count` human-embodiment episodes of `task` filmed by the moving head camera, randomised per `config`.

    One env serves all of them (building it costs more than an episode): each episode draws the env's next
    seeded initial state, a new scene look, camera path and degradations from `seed`."""
    from robo4d.world.camera import EgoMotion
    from robo4d.world.env import WorldEnv
    from robo4d.world.generate import _workspace_centre

    rng = np.random.default_rng(seed)
    motion: list[EgoMotion] = []
    env = WorldEnv(task, seed=seed, image_size=image_size, cameras=(types.CAM_EGO,), max_steps=10**9,
                   human=True, ego=lambda f: motion[-1].at(f, tasks.FPS))  # fmt: skip
    clips = []
    try:
        for _ in range(count):
            stride = int(rng.integers(1, config.max_stride + 1)) if config.enabled else 1
            if config.enabled:
                randomize_scene(env, rng)
            env.reset_state()
            ego = EgoMotion.sample(rng, steps * stride + 1, centre=_workspace_centre(env))
            if config.enabled:
                scale = rng.uniform(*config.shake_scale)
                ego = EgoMotion(**{**ego.__dict__, "shake_lookat": ego.shake_lookat * scale,
                                   "shake_angles": ego.shake_angles * scale})  # fmt: skip
            motion.append(ego)
            clip = _record(env, steps=steps, stride=stride, grid=grid)
            clips.append(degrade(clip, rng, config) if config.enabled else clip)
    finally:
        env.close()
    return clips


def _record(env: object, *, steps: int, stride: int, grid: int) -> Clip:
    from robo4d.world.tracks import anchor_queries, project, to_sensor_depth, track_frame

    frames, uvs, vis = [], [], []
    anchors = None
    for step in range(steps * stride):
        if step % stride == 0:
            view = env.render(types.CAM_EGO, segmentation=anchors is None)
            depth = to_sensor_depth(view["depth"])
            k, e = env._intrinsics.astype(np.float64), view["extrinsics"].astype(np.float64)
            pos, mat = env.body_poses()
            if anchors is None:
                anchors = anchor_queries(grid, depth, view["body"], k, e, pos, mat)
            points, visible = track_frame(anchors, pos, mat, e, k, depth)
            z_ok = points[:, 2] > 1e-3
            uv = project(np.where(z_ok[:, None], points, [0.0, 0.0, 1.0]), k)
            frames.append(view["rgb"])
            uvs.append(np.where(z_ok[:, None], uv, -1.0).astype(np.float32))
            vis.append(visible & z_ok)
        env.step(env.expert_action())
    return Clip(np.stack(frames), np.stack(uvs), np.stack(vis))


# --- image-space degradations --------------------------------------------------------------------------------


def degrade(clip: Clip, rng: np.random.Generator, config: RandomizeConfig) -> Clip:
    """Occluders, blur, noise, tone and compression; pixels never move, so uv is unchanged."""
    frames, visible = _occlude(clip, rng, int(rng.integers(0, config.max_occluders + 1)))
    if rng.random() < config.blur_prob:
        frames = _motion_blur(frames, clip, rng)
    img = frames.astype(np.float32) / 255.0
    gamma, contrast = rng.uniform(0.7, 1.4), rng.uniform(0.7, 1.2)
    img = np.clip((img**gamma - 0.5) * contrast + 0.5 + rng.uniform(-0.1, 0.1), 0, 1) * 255
    img = img + rng.normal(0, rng.uniform(*config.noise_std), img.shape)
    frames = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        frames = _jpeg(frames, int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)))
    else:
        frames = _h264(frames, int(rng.integers(config.h264_crf[0], config.h264_crf[1] + 1)))
    return Clip(frames, clip.uv, visible)


def _occlude(clip: Clip, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    frames, visible = clip.frames.copy(), clip.visible.copy()
    t_len, h, w = frames.shape[:3]
    for _ in range(count):
        texture = _procedural_texture(rng, h, w, 3)
        radius = rng.uniform(0.08, 0.25) * np.array([w, h])  # ellipse half-axes, pixels
        start = rng.uniform(0, 1, 2) * [w, h]
        velocity = rng.normal(0, 0.02, 2) * [w, h]  # pixels per frame
        angle = rng.uniform(0, 180)
        for t in range(t_len):
            centre = start + velocity * t
            mask = np.zeros((h, w), np.uint8)
            cv2.ellipse(mask, (centre * 16).astype(int).tolist(), (radius * 16).astype(int).tolist(), angle,
                        0, 360, 1, -1, shift=4)  # fmt: skip
            frames[t][mask > 0] = texture[mask > 0]
            ix = np.clip(clip.uv[t, :, 0].astype(int), 0, w - 1)
            iy = np.clip(clip.uv[t, :, 1].astype(int), 0, h - 1)
            visible[t] &= mask[iy, ix] == 0
    return frames, visible


def _motion_blur(frames: np.ndarray, clip: Clip, rng: np.random.Generator) -> np.ndarray:
    """Blur each frame along the median image motion of its visible points (camera motion dominates)."""
    import cv2

    out = frames.copy()
    for t in range(1, len(frames)):
        both = clip.visible[t] & clip.visible[t - 1]
        if not both.any():
            continue
        flow = np.median(clip.uv[t, both] - clip.uv[t - 1, both], axis=0) * rng.uniform(0.5, 1.0)  # (2,)
        length = int(np.ceil(np.linalg.norm(flow)))
        if length < 2:
            continue
        kernel = np.zeros((2 * length + 1, 2 * length + 1), np.float32)
        end = (length + flow).round().astype(int)
        cv2.line(kernel, (length, length), (int(end[0]), int(end[1])), 1.0, 1)
        out[t] = cv2.filter2D(frames[t], -1, kernel / kernel.sum())
    return out


def _jpeg(frames: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    out = np.empty_like(frames)
    for t, frame in enumerate(frames):
        ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        out[t] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return out


def _h264(frames: np.ndarray, crf: int) -> np.ndarray:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=tasks.FPS)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "threads": "1"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    buf.seek(0)
    with av.open(buf) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(decoded)[: len(frames)]


def generate_clips(out: Path, *, count: int, first: int, per_env: int, image_size: int, steps: int, grid: int,
                   config: RandomizeConfig) -> list[Path]:  # fmt: skip
    """Render clips `first .. first+count-1` into `out`, `per_env` at a time (group g: task HUMAN_TASKS[g % 40],
    seed CLIP_SEED_BASE + g); finished groups are kept, so an interrupted run resumes. `first` must be a
    multiple of `per_env`."""
    from tqdm import tqdm

    if first % per_env or count < 1:
        raise ValueError(f"first ({first}) must be a multiple of per_env ({per_env}) and count >= 1")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"clip_{i:06d}.npz" for i in range(first, first + count)]
    bar = tqdm(total=count, desc="tracker clips", unit="clip")
    for group in range(first // per_env, (first + count + per_env - 1) // per_env):
        mine = [out / f"clip_{i:06d}.npz" for i in range(group * per_env, (group + 1) * per_env)]
        if not all(p.is_file() for p in mine):
            task = tasks.HUMAN_TASKS[group % len(tasks.HUMAN_TASKS)]
            clips = render_clips(task, CLIP_SEED_BASE + group, count=per_env, image_size=image_size, steps=steps,
                                 grid=grid, config=config)  # fmt: skip
            for path, clip in zip(mine, clips, strict=True):
                save_clip(path, clip)
        bar.update(per_env)
    bar.close()
    return paths
