"""interop/report.py: rendering, merging partial runs, keeping hand-written notes."""

from __future__ import annotations

from pathlib import Path

from interop.report import BEGIN, END, Collector, Report, Result, load, render, write_report


def _collector(*results: tuple[str, str, str, bool, str]) -> Collector:
    c = Collector()
    for nodeid, client, scenario, passed, detail in results:
        c.modules_collected.add(nodeid.split("::", 1)[0])
        c.record(nodeid, client, scenario, passed, detail)
    return c


def test_failure_is_marked_with_its_reason_and_na_cells_are_labelled() -> None:
    c = _collector(
        ("interop/test_a.py::T::x", "kafkajs", "metadata", True, ""),
        ("interop/test_a.py::T::y", "kafkajs", "offsets", False, "AssertionError: 3 != 5"),
    )
    c.not_applicable("kafkajs", "codec-zstd", "no codec")
    text = render(c.report)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    kafkajs_col = 5  # confluent, kafka-python, aiokafka, kcat, kafkajs
    assert rows["Metadata, topic creation, list topics"].split("|")[kafkajs_col + 1].strip() == "pass"
    assert rows["Watermarks, offsets for times"].split("|")[kafkajs_col + 1].strip() == "**FAIL** [1]"
    assert rows["Produce/consume, zstd"].split("|")[kafkajs_col + 1].strip() == "n/a (client)"
    assert rows["Produce/consume, zstd"].split("|")[1 + 1].strip() == "not run"
    assert "1. kafkajs / offsets: AssertionError: 3 != 5" in text


def test_a_failing_phase_is_not_overwritten_by_a_later_pass() -> None:
    c = Collector()
    c.record("interop/test_a.py::T::x", "kcat", "metadata", False, "(setup) boom")
    c.record("interop/test_a.py::T::x", "kcat", "metadata", True, "")
    assert c.report.results["interop/test_a.py::T::x"].outcome == "failed"


def test_partial_run_keeps_other_modules_results_and_hand_notes(tmp_path: Path) -> None:
    doc = tmp_path / "compatibility.md"
    first = _collector(
        ("interop/test_a.py::T::x", "confluent", "metadata", True, ""),
        ("interop/test_b.py::T::x", "kcat", "metadata", False, "RuntimeError: kcat exited 1"),
    )
    write_report(first, doc)
    text = doc.read_text()
    doc.write_text(text.replace(END, END + "\n\n## Notes\n\nhand-written note\n"))

    second = _collector(("interop/test_a.py::T::x", "confluent", "metadata", False, "AssertionError: no"))
    merged = write_report(second, doc)
    assert merged.results["interop/test_a.py::T::x"].outcome == "failed"
    assert merged.results["interop/test_b.py::T::x"].outcome == "failed"  # module not run: kept

    third = _collector(("interop/test_b.py::T::x", "kcat", "metadata", True, ""))
    third.deselected.add("interop/test_b.py::T::gone")
    merged = write_report(third, doc)
    assert merged.results["interop/test_b.py::T::x"].outcome == "passed"
    final = doc.read_text()
    assert final.count(BEGIN) == 1 and final.count(END) == 1
    assert "hand-written note" in final
    _, embedded, _ = load(doc)
    assert set(embedded.results) == {"interop/test_a.py::T::x", "interop/test_b.py::T::x"}


def test_stale_results_of_a_rerun_module_are_dropped() -> None:
    old = Report(
        results={"interop/test_a.py::T::removed": Result("confluent", "offsets", "failed", "x", "interop/test_a.py")}
    )
    c = _collector(("interop/test_a.py::T::x", "confluent", "metadata", True, ""))
    merged = c.merged_with(old)
    assert "interop/test_a.py::T::removed" not in merged.results
