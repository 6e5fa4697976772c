"""Figure builders: the drift explorer's slider restyles the right traces with the right data."""

import numpy as np
import plotly.graph_objects as go
import pytest

from lls.plots import PLOTLY_JSON, drift_explorer, show, slider_figure


def test_drift_explorer_slider_steps_carry_each_steps_capture():
    steps = [0, 10, 20]
    overlap = np.eye(3)
    capture = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.9]])
    fig = drift_explorer(steps, overlap, [1, 2], capture, reference=0.77)
    slider = fig.layout.sliders[0]
    assert [s.label for s in slider.steps] == ["0", "10", "20"]
    update, traces = slider.steps[2].args
    assert list(traces) == [1, 3]
    assert update["y"][1] == [0.5, 0.9] and update["x"][0] == [20, 20] and update["x"][1] == [1, 2]


def test_drift_explorer_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shapes"):
        drift_explorer([0, 1], np.eye(3), [1], np.zeros((2, 1)))


def test_slider_figure_checks_frames():
    base = go.Figure([go.Scatter(x=[0], y=[0])])
    with pytest.raises(ValueError):
        slider_figure([[{"y": [1]}]], ["a", "b"], base, [0], "t")


def test_show_emits_html_without_plotlyjs_and_json(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    show(go.Figure([go.Scatter(x=[0, 1], y=[1, 2])]))
    bundle = shown[0]
    assert "Plotly.newPlot" in bundle["text/html"] and len(bundle["text/html"]) < 20000
    assert bundle[PLOTLY_JSON]["data"][0]["y"] == [1, 2]


def test_slider_frames_must_name_the_same_properties_per_trace():
    base = go.Figure([go.Scatter(x=[0], y=[0]), go.Scatter(x=[0], y=[0])])
    with pytest.raises(ValueError, match="same properties"):
        slider_figure([[{"x": [1]}, {"y": [1]}]], ["a"], base, [0, 1], "t")


def test_figure_csv_holds_the_plotted_numbers():
    from lls.plots import figure_csv

    fig = go.Figure([go.Scatter(x=[1, 2], y=[3.0, 4.0], name="a", error_y={"array": [0.1, 0.2]}),
                     go.Heatmap(z=[[1, 2], [3, 4]], x=[0, 1], y=[5, 6], name="h")])
    rows = [line.split(",") for line in figure_csv(fig).strip().splitlines()]
    assert rows[0] == ["trace", "x", "y", "z", "error"]
    assert ["a", "2", "4.0", "", "0.2"] in rows and ["h", "1", "6", "4.0", ""] in rows


def test_show_puts_the_stored_caption_and_a_csv_link_under_the_figure(monkeypatch):
    import base64

    import IPython.display

    from lls.plots import captioned

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda bundle, raw: shown.append(bundle))
    fig = captioned(go.Figure([go.Scatter(x=[1], y=[2], name="p")], layout={"title": "A title"}),
                    "Mean over 3 seeds; look at the slope.")
    show(fig)
    page = shown[0]["text/html"]
    assert page.startswith('<figure class="lls-figure">') and "Mean over 3 seeds; look at the slope." in page
    data = page.split("base64,")[1].split('"')[0]
    assert base64.b64decode(data).decode().splitlines()[1] == "p,1,2,,"
    assert 'download="a-title.csv"' in page


def test_a_long_legend_makes_the_figure_tall_enough():
    from lls.plots import fit_legend_height

    fig = go.Figure([go.Scatter(x=[0], y=[i], name=f"curve {i}") for i in range(40)], layout={"height": 400})
    fit_legend_height(fig)
    assert fig.layout.height >= 40 * 19
    short = go.Figure([go.Scatter(x=[0], y=[0], name="one")], layout={"height": 400})
    fit_legend_height(short)
    assert short.layout.height == 400
