"""The task split, instructions, presets and seed scheme of the embedded Meta-World world.

Split (documented, disjoint): ROBOT_TASKS are the 10 tasks robot demos are recorded for and evaluation
measures — single-object tasks whose scripted experts finish in well under 60 recorded steps, so a policy
trained on 10 demos has a chance. HUMAN_TASKS are the other 40: the "human video" side, like EPIC-KITCHENS
versus a robot lab, shares the scene but never the tasks.

Seeds: a demo's initial state comes from env seed `demo_seed(seed, episode)` = seed * 100_000 + episode;
evaluation uses `eval_seed(eval_seed, episode)` = 1_000_000 + eval_seed * 10_000 + episode. With
`seed < MAX_DEMO_SEED` (checked) and fewer than 100_000 demos per task the two ranges never meet.
"""

from __future__ import annotations

from dataclasses import dataclass

from robo4d.methods.base import unknown_name_message

ROBOT_TASKS: tuple[str, ...] = (
    "reach-v3",
    "button-press-topdown-v3",
    "drawer-close-v3",
    "drawer-open-v3",
    "door-open-v3",
    "window-open-v3",
    "faucet-open-v3",
    "handle-press-v3",
    "coffee-button-v3",
    "plate-slide-v3",
)

INSTRUCTIONS: dict[str, str] = {
    "assembly-v3": "put the ring on the peg",
    "basketball-v3": "dunk the ball into the basket",
    "bin-picking-v3": "move the cube from one bin to the other",
    "box-close-v3": "put the lid on the box",
    "button-press-topdown-v3": "press the button from the top",
    "button-press-topdown-wall-v3": "press the button from the top behind the wall",
    "button-press-v3": "press the button from the front",
    "button-press-wall-v3": "press the button behind the wall",
    "coffee-button-v3": "press the button on the coffee machine",
    "coffee-pull-v3": "pull the mug out of the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "turn the dial",
    "disassemble-v3": "take the ring off the peg",
    "door-close-v3": "close the door",
    "door-lock-v3": "lock the door",
    "door-open-v3": "open the door",
    "door-unlock-v3": "unlock the door",
    "hand-insert-v3": "put the hand into the hole",
    "drawer-close-v3": "close the drawer",
    "drawer-open-v3": "open the drawer",
    "faucet-open-v3": "turn the faucet on",
    "faucet-close-v3": "turn the faucet off",
    "hammer-v3": "hammer the nail into the wall",
    "handle-press-side-v3": "press the handle down from the side",
    "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up from the side",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever up",
    "pick-place-wall-v3": "pick up the puck and place it behind the wall",
    "pick-out-of-hole-v3": "pick the peg out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "plate-slide-v3": "slide the plate into the cabinet",
    "plate-slide-side-v3": "slide the plate into the cabinet from the side",
    "plate-slide-back-v3": "slide the plate out of the cabinet",
    "plate-slide-back-side-v3": "slide the plate out of the cabinet sideways",
    "peg-insert-side-v3": "insert the peg into the hole from the side",
    "peg-unplug-side-v3": "unplug the peg from the side",
    "soccer-v3": "kick the ball into the goal",
    "stick-push-v3": "push the bottle with the stick",
    "stick-pull-v3": "pull the bottle with the stick",
    "push-v3": "push the puck to the goal",
    "push-wall-v3": "push the puck to the goal behind the wall",
    "push-back-v3": "push the puck back to the goal",
    "reach-v3": "reach the goal position",
    "reach-wall-v3": "reach the goal position behind the wall",
    "shelf-place-v3": "place the puck on the shelf",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the table",
    "window-open-v3": "slide the window open",
    "window-close-v3": "slide the window closed",
}
ALL_TASKS: tuple[str, ...] = tuple(INSTRUCTIONS)

# The Meta-World site at each task's success target (`_target_pos`), drawn as the goal marker (world.env).
# Tasks not listed judge success by an object's own state (a button pressed, a dial turned) or a target
# with no site (sweep: off the table edge), and their objects are visible geometry already.
GOAL_SITES: dict[str, str] = {
    **{
        t: "goal"
        for t in (
            "basketball-v3",
            "box-close-v3",
            "dial-turn-v3",
            "door-close-v3",
            "door-open-v3",
            "hand-insert-v3",
            "drawer-close-v3",
            "drawer-open-v3",
            "hammer-v3",
            "lever-pull-v3",
            "pick-place-wall-v3",
            "pick-out-of-hole-v3",
            "pick-place-v3",
            "plate-slide-v3",
            "plate-slide-side-v3",
            "plate-slide-back-v3",
            "plate-slide-back-side-v3",
            "peg-insert-side-v3",
            "peg-unplug-side-v3",
            "soccer-v3",
            "stick-push-v3",
            "stick-pull-v3",
            "push-v3",
            "push-wall-v3",
            "push-back-v3",
            "reach-v3",
            "reach-wall-v3",
            "shelf-place-v3",
            "sweep-into-v3",
            "window-open-v3",
            "window-close-v3",
        )
    },  # fmt: skip
    "coffee-pull-v3": "mug_goal",
    "coffee-push-v3": "mug_goal",
    "faucet-open-v3": "goal_open",
    "faucet-close-v3": "goal_close",
    "handle-press-side-v3": "goalPress",
    "handle-press-v3": "goalPress",
    "handle-pull-side-v3": "goalPull",
    "handle-pull-v3": "goalPull",
}
HUMAN_TASKS: tuple[str, ...] = tuple(t for t in ALL_TASKS if t not in ROBOT_TASKS)

FPS = 40  # recorded steps per second: Meta-World steps at 80 Hz and every recorded step repeats its action twice
ACTION_REPEAT = 2
MAX_DEMO_SEED = 10


def demo_seed(seed: int, episode: int) -> int:
    """Env seed of demo `episode` generated with `--seed seed`."""
    if not 0 <= seed < MAX_DEMO_SEED:
        raise ValueError(f"--seed must be in [0, {MAX_DEMO_SEED}) so demo and evaluation seeds never meet, got {seed}")
    return seed * 100_000 + episode


def eval_seed(seed: int, episode: int) -> int:
    """Env seed of evaluation `episode` under evaluation seed `seed` (never a demo's seed)."""
    if not 0 <= seed < 100 or not 0 <= episode < 10_000:
        raise ValueError(f"evaluation seed must be in [0, 100) and episode in [0, 10000), got {seed}, {episode}")
    return 1_000_000 + seed * 10_000 + episode


def instruction(task: str) -> str:
    check_tasks((task,))
    return INSTRUCTIONS[task]


def check_tasks(tasks: tuple[str, ...], allowed: tuple[str, ...] = ALL_TASKS, *, kind: str = "task") -> None:
    """Raise a clear error for the first name not in `allowed` (with a 'did you mean')."""
    for task in tasks:
        if task not in allowed:
            raise ValueError(unknown_name_message(kind, task, allowed))


@dataclass(frozen=True, kw_only=True)
class WorldPreset:
    """Sizes of the generated datasets."""

    human_tasks: tuple[str, ...]  # tasks filmed as "human video"
    human_episodes: int  # episodes per human task
    robot_tasks: tuple[str, ...]  # tasks with robot demos
    robot_episodes: int  # demo attempts per robot task (failed attempts are dropped unless kept)
    max_steps: int  # recorded steps per episode at most
    grid: int  # GxG ground-truth query grid of the human videos

    def __post_init__(self) -> None:
        check_tasks(self.human_tasks, HUMAN_TASKS, kind="human task")
        check_tasks(self.robot_tasks, ROBOT_TASKS, kind="robot task")
        for name in ("human_episodes", "robot_episodes", "max_steps", "grid"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorldPreset.{name} must be >= 1, got {getattr(self, name)}")


PRESETS: dict[str, WorldPreset] = {
    # Used by the tests: both commands finish in well under a minute.
    "tiny": WorldPreset(
        human_tasks=("door-close-v3", "coffee-push-v3"),
        human_episodes=2,
        robot_tasks=("reach-v3", "drawer-close-v3"),
        robot_episodes=2,
        max_steps=40,
        grid=16,
    ),
    # The demo's size.
    "default": WorldPreset(
        human_tasks=(
            "door-close-v3",
            "coffee-push-v3",
            "button-press-v3",
            "handle-pull-v3",
            "faucet-close-v3",
            "window-close-v3",
            "push-v3",
            "lever-pull-v3",
        ),
        human_episodes=8,
        robot_tasks=ROBOT_TASKS,
        robot_episodes=10,
        max_steps=120,
        grid=36,
    ),
}


def world_preset(name: str) -> WorldPreset:
    if name not in PRESETS:
        raise KeyError(unknown_name_message("world preset", name, PRESETS))
    return PRESETS[name]
