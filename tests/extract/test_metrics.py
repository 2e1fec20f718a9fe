import numpy as np

from robo4d.extract.metrics import epe_3d, moving_points, project, tapvid_2d


def test_tapvid_known_answers_with_256_scaling():
    gt = np.zeros((3, 4, 2), np.float32)
    pred = gt.copy()
    # At 128x128 one native pixel is 2 px at 256: errors 0, 0.75, 3 and 10 native px -> 0, 1.5, 6, 20 at 256.
    pred[1:, :, 0] = [0.0, 0.75, 3.0, 10.0]
    vis = np.ones((3, 4), bool)
    m = tapvid_2d(pred, vis, gt, vis, image_size=(128, 128))
    assert m["delta_1px"] == 0.25 and m["delta_2px"] == 0.5 and m["delta_4px"] == 0.5
    assert m["delta_8px"] == 0.75 and m["delta_16px"] == 0.75
    assert np.isclose(m["delta_avg"], (0.25 + 0.5 + 0.5 + 0.75 + 0.75) / 5)
    assert m["occlusion_accuracy"] == 1.0
    assert np.isclose(m["jaccard_1px"], 2 / (2 + 6 + 6))  # a far visible point is both a false positive and negative


def test_tapvid_occlusion_and_jaccard():
    gt = np.zeros((2, 4, 2), np.float32)
    gt_vis = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    pred_vis = np.array([[1, 1, 1, 1], [1, 0, 1, 0]], bool)  # frame 0 (query frame) is not scored
    m = tapvid_2d(gt, pred_vis, gt, gt_vis, image_size=(256, 256))
    assert m["occlusion_accuracy"] == 0.5
    assert m["delta_1px"] == 1.0  # positions are scored on ground-truth-visible points whatever pred says
    assert np.isclose(m["jaccard_1px"], 1 / 3)  # TP: point 0; FN: point 1; FP: point 2


def test_epe_and_moving_points():
    gt = np.zeros((2, 3, 3), np.float32)
    pred = gt.copy()
    pred[:, :, 0] = [0.005, 0.015, 0.1]
    m = epe_3d(pred, gt, np.ones((2, 3), bool))
    assert np.isclose(m["median_m"], 0.015) and np.isclose(m["mean_m"], 0.04)
    assert np.isclose(m["within_1cm"], 1 / 3) and np.isclose(m["within_2cm"], 2 / 3) and m["within_5cm"] == 2 / 3
    assert np.isnan(epe_3d(pred, gt, np.zeros((2, 3), bool))["median_m"])
    world = np.zeros((3, 2, 3), np.float32)
    world[2, 0, 0] = 0.05
    world[2, 1, 0] = 0.05
    vis = np.array([[1, 1], [1, 1], [1, 0]], bool)  # point 1 moves only while hidden
    np.testing.assert_array_equal(moving_points(world, vis), [True, False])


def test_project():
    k = np.array([[[100, 0, 32], [0, 100, 32], [0, 0, 1]]], np.float32)
    np.testing.assert_allclose(project(np.array([[[0.1, 0.2, 2.0]]]), k), [[[37, 42]]])
