"""``xenoedge export``: checkpoint -> ONNX / OpenVINO artifacts -> accuracy gate -> signed bundle.

Steps (each reported through ``log``):

1. load the checkpoint, find its sensor profile (by name, else by its wavelengths) and the
   frame size (the sensor's cube, or ``shape``);
2. export the FP32 graph with preprocessing folded in (``xenoedge.export.onnx_export``; the raw
   variant, or the reflectance variant for TensorRT, which has no uint16 tensors);
3. make the artifacts the target table asks for (``xenoedge.export.targets.artifacts_for``):
   ORT QDQ INT8 (Q/DQ placed for the runtime: ``Target.int8_placement``), FP16 ONNX for
   TensorRT, OpenVINO IR FP32/FP16, NNCF INT8 (``Target.nncf_target_device``), and check each
   against the target's constraints (``xenoedge.export.targets.check_artifact_for_target``, ONNX and IR
   alike); a target that needs static shapes refuses ``dynamic`` before any of this;
4. build calibration and validation frames from data set folders: reflectance cubes tiled to
   the frame size and turned into raw counts with the sensor's nominal dark level and white
   signal, so every artifact sees exactly what a camera would give it;
5. run every artifact on the validation frames and compare it with the FP32 PyTorch model
   (pixel agreement, DSC per class): a drop above ``max_drop`` stops the export;
6. write the bundle: manifest (sensor signature, input contract, labels, per-target files,
   accuracy, provenance), the artifacts, a golden self-test, and an Ed25519 signature.

TensorRT engines are never built or shipped; the Jetson target's ONNX is scored with ONNX
Runtime as a stand-in and carries the documented strongly typed ``trtexec`` command.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from xenoedge.export.errors import ExportError
from xenoedge.export.onnx_graph import copy_proto

from xenoedge.sensors import SENSORS, SensorProfile, get_sensor

Log = Callable[[str], None]
DEFAULT_MAX_DROP = 0.01
SELFTEST_MARGIN = 0.02  # the self-test threshold sits this far below the agreement measured here


@dataclass
class ExportReport:
    bundle: Path
    target: str
    precision: str
    artifacts: dict[str, dict] = field(default_factory=dict)  # bundle target name -> accuracy record
    sizes: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)  # bundle target -> why the gate refused it
    quant_reports: dict[str, Path] = field(default_factory=dict)  # bundle target -> per-layer error JSON


def sensor_for(config: dict) -> SensorProfile:
    """The checkpoint's sensor profile: by name, else the profile with the same wavelengths."""
    if config.get("sensor"):
        return get_sensor(config["sensor"])
    wavelengths = np.asarray(config["wavelengths_nm"], dtype=np.float64)
    for profile in SENSORS.values():
        if profile.n_bands == wavelengths.size and np.allclose(profile.wavelengths(), wavelengths, atol=0.01):
            return profile
    raise ExportError(
        f"no sensor profile has the checkpoint's {wavelengths.size} bands "
        f"({wavelengths.min():.1f}-{wavelengths.max():.1f} nm); known: {', '.join(SENSORS)}"
    )


def _fit(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """``array`` (h, w, ...) mirrored/cropped to (height, width, ...)."""
    pad_h, pad_w = max(0, height - array.shape[0]), max(0, width - array.shape[1])
    if pad_h or pad_w:
        pad = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (array.ndim - 2)
        array = np.pad(array, pad, mode="symmetric")
    return array[:height, :width]


def camera_references(sensor: SensorProfile, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(dark, gain) (H, W, C) float32 from the sensor's nominal dark level and white signal."""
    from xenoedge.export.onnx_export import reference_gain
    from xenoedge.xeno.camera_model import lamp_times_qe

    c = sensor.n_bands
    dark = np.full((height, width, c), sensor.dark_level_counts, dtype=np.float32)
    white = dark + sensor.white_level_counts * lamp_times_qe(sensor.wavelengths_nm)[None, None, :]
    return dark, reference_gain(dark, white)


@dataclass
class Frames:
    """Graph inputs and ground truth for calibration/validation."""

    inputs: list[dict[str, np.ndarray]]
    truth: list[np.ndarray]
    ids: list[str]


def frames_from_data(
    data: Path,
    sensor: SensorProfile,
    height: int,
    width: int,
    *,
    variant: str,
    limit: int,
    exclude: set[str],
    pool: int = 1,
) -> Frames:
    """Up to ``limit`` frames from a data set folder, as graph inputs of ``variant``.

    ``pool`` > 1: the graph pools the frame, so ``dark``/``gain`` are given at its working size.
    """
    from xenoedge.calibration.pooling import pooled_references
    from xenoedge.devices.formats import read_cube
    from xenoedge.xeno.dataset import SpectralDataset

    dataset = SpectralDataset.open(data, sensor=sensor)
    dark, gain = camera_references(sensor, height, width)
    graph_dark, graph_gain = pooled_references(dark, gain, pool)
    frames = Frames([], [], [])
    for i, record in enumerate(dataset.records):
        if record.image_id in exclude:
            continue
        if len(frames.ids) >= limit:
            break
        cube, wavelengths = read_cube(record.cube_path)
        if wavelengths is not None and (
            cube.shape[2] != sensor.n_bands or not np.allclose(wavelengths, sensor.wavelengths(), atol=0.5)
        ):
            raise ExportError(
                f"{record.cube_path}: {cube.shape[2]} bands at {wavelengths.min():.0f}-{wavelengths.max():.0f} nm; "
                f"the checkpoint expects {sensor.name}'s {sensor.n_bands} bands "
                f"({sensor.wavelengths_nm[0]:.0f}-{sensor.wavelengths_nm[-1]:.0f} nm)"
            )
        reflectance = _fit(np.asarray(cube, dtype=np.float32), height, width)
        labels = _fit(dataset.load(i).labels, height, width)
        if variant == "raw":
            raw = np.clip(np.rint(reflectance / gain + dark), 0, sensor.max_counts).astype(np.uint16)
            frames.inputs.append({"raw": raw[None], "dark": graph_dark, "gain": graph_gain})
        else:
            frames.inputs.append({"reflectance": reflectance[None]})
        frames.truth.append(labels)
        frames.ids.append(record.image_id)
    if not frames.ids:
        raise ExportError(f"{data}: no images left for calibration/validation (all excluded?)")
    return frames


def reference_predictions(model, frames: Frames) -> list[np.ndarray]:
    """FP32 PyTorch class maps for the frames, through the same preprocessing as the graph.

    For a model that pools (``unet-edge``) that is the graph's order: the frame pooled, then
    calibrated and L1-normalised at the working size, the core, logits upsampled to the frame.
    """
    from xenoedge.calibration.normalise import l1_normalise
    from xenoedge.calibration.pooling import pool_blocks
    from xenoedge.calibration.reflectance import MAX_REFLECTANCE
    from xenoedge.export.onnx_export import model_pool, preprocess_reference
    from xenoedge.xeno.evaluate import predict, predict_working

    pool = model_pool(model)
    out = []
    for inputs in frames.inputs:
        frame = inputs["raw"][0] if "raw" in inputs else inputs["reflectance"][0]
        if "raw" in inputs:
            spectra = preprocess_reference(frame, inputs["dark"], inputs["gain"], pool=pool)
        else:
            spectra = l1_normalise(np.clip(pool_blocks(frame, pool), 0.0, MAX_REFLECTANCE))
        out.append(predict(model, spectra) if pool == 1 else predict_working(model, spectra, frame.shape[:2]))
    return out


GOLDEN_PATCH = 32  # pixels; the self-test frame is a patch of a validation frame, tiled


def golden_inputs(frames: Frames, height: int, width: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(stored, full) self-test inputs: small arrays for the bundle and their tiled full-size form.

    The patch is the ``GOLDEN_PATCH``-pixel square (shrunk to divide the frame) around the
    centre of the first validation frame; references are stored per band as (1, 1, C).
    """
    ph = next(p for p in range(min(GOLDEN_PATCH, height), 0, -1) if height % p == 0)
    pw = next(p for p in range(min(GOLDEN_PATCH, width), 0, -1) if width % p == 0)
    top, left = (height - ph) // 2, (width - pw) // 2
    stored = {}
    for name, array in frames.inputs[0].items():
        if name in ("raw", "reflectance"):
            stored[name] = np.ascontiguousarray(array[:, top : top + ph, left : left + pw])
        else:
            if not np.all(array == array[:1, :1]):
                raise ExportError(f"self-test reference {name!r} varies across pixels; cannot store it per band")
            stored[name] = np.ascontiguousarray(array[:1, :1])
    from xenoedge.export.bundle import tile_to

    full = {name: tile_to(a, frames.inputs[0][name].shape) for name, a in stored.items()}
    return stored, full


def _runner(kind: str, path: Path, precision: str):
    """A runner with the device engines' own settings (``xenoedge.export.bundle.runtime``): OpenVINO with
    the ``"auto"`` precision hint (f32 only for fp32 targets; int8/fp16 on the plugin default,
    bf16 on AVX512-BF16/AMX CPUs), only the ``classes`` output computed, default threads."""
    from xenoedge.export.bundle.runtime import openvino_precision_hint
    from xenoedge.export.runners import OpenVinoRunner, OrtRunner

    if kind == "onnx":
        return OrtRunner(path, outputs=("classes",))
    return OpenVinoRunner(path, precision_hint=openvino_precision_hint(precision, "CPU"), outputs=("classes",))


def export_checkpoint(
    checkpoint: Path,
    *,
    target: str,
    precision: str | Sequence[str],
    out: Path,
    calib: Path,
    val: Path,
    max_drop: float | None = DEFAULT_MAX_DROP,
    sign_key: Path | None = None,
    shape: tuple[int, int] | None = None,
    dynamic: bool = False,
    calib_frames: int = 16,
    val_frames: int = 16,
    method: str = "minmax",
    keep_float: tuple[str, ...] = (),
    name: str | None = None,
    version: str = "0.1.0",
    unsupported_ok: tuple[str, ...] = (),
    provenance: dict | None = None,
    drop_failing: bool = False,
    quant_report: bool = False,
    log: Log = print,
) -> ExportReport:
    """Export ``checkpoint`` for ``target`` at ``precision`` into bundle ``out``; see the module doc.

    ``precision``: one precision or several (e.g. ``("fp32", "int8")``): every artifact of each
    goes into the one bundle, each gated on its own. ``unsupported_ok``: foreground classes the
    validation set knowingly lacks (the gate fails any other class without validation support).
    ``provenance``: extra entries for the manifest's provenance (e.g. the default-bundle recipe).
    ``drop_failing``: an artifact that fails the gate is left out of the bundle (reason in
    ``report.dropped`` and the manifest's ``provenance.export.gate_dropped``) instead of stopping
    the export; the export still stops when nothing passes. ``quant_report``: for every ONNX INT8
    artifact, a per-layer quantisation error report (``xenoedge.export.quantize.quantization_error_report``)
    beside the bundle, ``<bundle stem>.<bundle target>.quant-report.json`` and ``.md``.
    """
    from xenoedge.export.accuracy import AccuracyGateError, compare_to_reference, gate
    from xenoedge.export.bundle import load_private_key, selftest_files, write_bundle
    from xenoedge.export.onnx_export import VARIANTS, export_onnx, metadata_from_config, model_pool, xenoedge_version
    from xenoedge.export.targets import (
        artifacts_for,
        check_artifact_for_target,
        get_target,
        lint_onnx,
        refuse_dynamic_for_target,
    )
    from xenoedge.xeno.checkpoint import load_model

    spec = get_target(target)
    precisions = (precision,) if isinstance(precision, str) else tuple(dict.fromkeys(precision))
    if not precisions:
        raise ExportError("give at least one precision")
    for one in precisions:
        if one not in spec.precisions:
            raise ExportError(f"target {target} takes precisions {', '.join(spec.precisions)}, not {one!r}")
    planned = [(one, artifact) for one in precisions for artifact in artifacts_for(target, one)]
    variant = "reflectance" if any(a.runtime == "tensorrt" for _, a in planned) else "raw"
    refuse_dynamic_for_target(spec, dynamic=dynamic, inputs=[VARIANTS[variant][0]])  # before any work
    if "int8" in precisions and calib is None:
        raise ExportError("INT8 needs calibration data: give --calib DATA")
    model, config = load_model(checkpoint)
    pool = model_pool(model)
    sensor = sensor_for(config)
    height, width = shape or sensor.cube_shape[:2]
    label_names = [label["name"] for label in config["labels"]]
    # Images the checkpoint saw are left out of validation, when validation uses its training folder.
    trained_on = config.get("train", {}).get("data")
    used = set()
    if trained_on and Path(trained_on).resolve() == Path(val).resolve():
        used = set(config.get("split", {}).get("train", [])) | set(config.get("split", {}).get("val", []))
    signing_key = load_private_key(sign_key) if sign_key else None

    work = Path(tempfile.mkdtemp(prefix="xenoedge-export-"))
    try:
        log(f"exporting {config['model']['name']} at {height}x{width}x{sensor.n_bands} ({variant} input)")
        fp32 = export_onnx(
            model,
            height=height,
            width=width,
            n_bands=sensor.n_bands,
            path=work / "model.fp32.onnx",
            variant=variant,
            dynamic=dynamic,
            metadata=metadata_from_config(config),
        )
        log("reading calibration and validation frames")
        calibration = (
            frames_from_data(
                calib, sensor, height, width, variant=variant, limit=calib_frames, exclude=set(), pool=pool
            )
            if calib
            else None
        )
        validation = frames_from_data(
            val, sensor, height, width, variant=variant, limit=val_frames, exclude=used, pool=pool
        )
        reference = reference_predictions(model, validation)
        golden_stored, golden_full = golden_inputs(validation, height, width)
        golden_expected = reference_predictions(model, Frames([golden_full], [], []))[0]
        golden_agreement = []

        files: dict[str, Path] = {}
        targets_manifest, accuracy, report = {}, {}, ExportReport(out, target, "+".join(precisions))
        openvino_source = fp32  # what OpenVINO CPU artifacts convert: measured faster with the block arg-max
        if spec.openvino_device == "CPU" and any(a.runtime == "openvino" for _, a in planned):
            openvino_source = block_argmax_source(fp32)
        for precision, artifact in planned:  # one precision at a time
            bundle_target = f"{target}-{artifact.runtime}-{precision}"
            folder = work / bundle_target
            folder.mkdir()
            main = folder / artifact.files[0]
            log(f"building {bundle_target}")
            report_path = None
            if quant_report and artifact.kind == "onnx" and artifact.graph_precision == "int8":
                report_path = Path(out).with_name(f"{Path(out).stem}.{bundle_target}.quant-report.json")
            source = openvino_source if artifact.runtime == "openvino" else fp32
            _build_artifact(
                artifact, spec, source, main, calibration, validation, max_drop, method, keep_float, report_path
            )
            if report_path is not None:
                report.quant_reports[bundle_target] = report_path
                log(f"{bundle_target}: per-layer quantisation error in {report_path} (+ .md)")
            check_artifact_for_target(main, target, precision)
            if artifact.runtime == "onnxruntime" and tuple(spec.ort_providers) == ("CPUExecutionProvider",):
                channels_last_post_file(main)  # measured faster in ONNX Runtime's CPU kernels only
            if artifact.runtime == "tensorrt" and lint_onnx(main) is not None:  # where polygraphy installs
                log(f"{bundle_target}: polygraphy check lint passed")
            entry = {
                "runtime": artifact.runtime,
                "precision": precision,
                "graph_precision": artifact.graph_precision,
                "model": f"models/{bundle_target}/{artifact.files[0]}",
            }
            gated = main
            if artifact.runtime == "onnxruntime":
                # ONNX Runtime runs every node, fetched or not: ship the graph without the confidence
                # branch beside the full one, for the device when nobody asks for confidence.
                lean = folder / main.name.replace(".onnx", ".classes.onnx")
                if classes_only_onnx(main, lean):
                    entry["model_classes_only"] = f"models/{bundle_target}/{lean.name}"
                    gated = lean  # what the daemon runs by default
                if tuple(spec.ort_providers) == ("CPUExecutionProvider",):
                    block_argmax_file(gated)  # the classes at full size only where classes meet
            runner = _runner(artifact.kind, gated, precision)
            predicted = [runner.predict(inputs) for inputs in validation.inputs]
            golden_agreement.append(float(np.mean(runner.predict(golden_full) == golden_expected)))
            record = compare_to_reference(reference, predicted, validation.truth, label_names)
            log(f"{bundle_target}: pixel agreement {record.pixel_agreement:.4f}")
            if max_drop is not None:
                try:
                    gate(record, max_drop, artifact=bundle_target, unsupported_ok=unsupported_ok)
                except AccuracyGateError as exc:
                    if not drop_failing:
                        raise
                    log(f"{bundle_target}: left out, {str(exc).splitlines()[0]}")
                    report.dropped[bundle_target] = str(exc)
                    golden_agreement.pop()
                    continue
            accuracy[bundle_target] = {
                **record.to_manifest(),
                "max_drop": max_drop,
                "passed": max_drop is not None,
                "unsupported_ok": list(unsupported_ok),
                "effective_precision": runner.effective_precision,
            }
            report.artifacts[bundle_target] = accuracy[bundle_target]
            entry["effective_precision"] = runner.effective_precision
            if artifact.build_command:
                entry["build_command"] = artifact.build_command
            if artifact.runtime == "openvino":
                entry["device"] = spec.openvino_device
            else:  # what the device opens the ONNX with (the gate ran it on the CPU provider here)
                entry["providers"] = list(spec.ort_providers)
            targets_manifest[bundle_target] = entry
            for file_name in artifact.files:
                files[f"models/{bundle_target}/{file_name}"] = folder / file_name
            if "model_classes_only" in entry:
                files[entry["model_classes_only"]] = gated

        if not targets_manifest:
            raise ExportError("no artifact passed the accuracy gate:\n" + "\n".join(report.dropped.values()))
        worst = min(golden_agreement)
        manifest = {
            "name": name or Path(checkpoint).name,
            "version": version,
            "description": f"{config['model']['name']} for {sensor.name}, {target} {'+'.join(precisions)}",
            "sensor": {"name": sensor.name, "signature": sensor.signature},
            "input": {
                "layout": "NHWC",
                "dtype": "uint16" if variant == "raw" else "float32",
                "shape": [1, height, width, sensor.n_bands],
                "variant": variant,
                "wavelengths_nm": list(sensor.wavelengths_nm),
            },
            "preprocessing": {
                "dark_input": "dark",
                "gain_input": "gain",
                "clip_max": 2.0,
                "l1_eps": config["preprocessing"]["l1_eps"],
                "pool": pool,
            },
            "labels": config["labels"],
            "targets": targets_manifest,
            "accuracy": accuracy,
            "provenance": {
                "checkpoint": str(checkpoint),
                "model": config["model"],
                "data": config["train"].get("data"),
                "species": list(config["train"].get("species") or []),
                "projections": list(config["train"].get("projections") or []),
                "seed": config["train"].get("seed"),
                "code": {"xenoedge": xenoedge_version()},
                "export": {
                    "target": target,
                    "precision": precisions[0] if len(precisions) == 1 else list(precisions),
                    "runtime_settings": runtime_settings(),
                    "calibration_method": method,
                    "keep_float": list(keep_float),
                    "calibration_frames": 0 if calibration is None else len(calibration.ids),
                    "validation_images": validation.ids,
                    "dynamic": dynamic,
                    "max_drop": max_drop,
                    "unsupported_ok": list(unsupported_ok),
                    "gate_dropped": {k: v.splitlines()[0] for k, v in report.dropped.items()},
                },
                **(provenance or {}),
            },
            "selftest": {"min_agreement": round(max(0.5, worst - SELFTEST_MARGIN), 4), "inputs_tile": True},
        }
        files.update(selftest_files(golden_stored, golden_expected[None].astype(np.uint8)))
        write_bundle(out, manifest, files, signing_key=signing_key)
        report.sizes = {k: Path(v).stat().st_size for k, v in files.items() if isinstance(v, Path)}
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rewrite_onnx_file(path: Path, rewrite) -> bool:
    """Apply ``rewrite`` (changes an ``onnx.ModelProto`` in place, returns whether it applied) to
    the ONNX file at ``path``, checked and saved; False (file untouched) when it did not apply."""
    import onnx

    model = onnx.load(str(path))
    if not rewrite(model):
        return False
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return True


def channels_last_post_file(path: Path) -> bool:
    """Rewrite the ONNX file at ``path`` with channels-last post-processing
    (``xenoedge.export.channels_last_post``); False when it does not apply (no pooling)."""
    from xenoedge.export.channels_last_post import channels_last_post

    return rewrite_onnx_file(path, channels_last_post)


def block_argmax_file(path: Path) -> bool:
    """Rewrite the ONNX file at ``path`` so that its classes come from the block arg-max
    (``xenoedge.export.block_argmax``); False when it does not apply (no pooling, odd pool)."""
    from xenoedge.export.block_argmax import block_argmax_post

    return rewrite_onnx_file(path, block_argmax_post)


def block_argmax_source(fp32: Path) -> Path:
    """A copy of ``fp32`` beside it (``*.block.onnx``) with the block arg-max, or ``fp32`` itself
    when the rewrite does not apply (docs/export_onnx.md)."""
    out = fp32.with_name(fp32.name.replace(".onnx", ".block.onnx"))
    shutil.copy2(fp32, out)
    if block_argmax_file(out):
        return out
    out.unlink()
    return fp32


def classes_only_onnx(src: Path, dst: Path) -> bool:
    """Write ``src`` without its ``confidence`` output and the nodes only it needs; False (nothing
    written) when the graph has no ``confidence`` output."""
    import onnx

    model = onnx.load(str(src))
    graph = model.graph
    if not any(o.name == "confidence" for o in graph.output) or len(graph.output) < 2:
        return False
    keep_outputs = [copy_proto(o) for o in graph.output if o.name != "confidence"]
    needed = {o.name for o in keep_outputs}
    keep_nodes = []
    for index in range(len(graph.node) - 1, -1, -1):  # nodes are topologically sorted
        node = graph.node[index]
        if any(name in needed for name in node.output):
            keep_nodes.append(copy_proto(node))
            needed.update(name for name in node.input if name)
    keep_nodes.reverse()
    initializers = [copy_proto(t) for t in graph.initializer if t.name in needed]
    value_info = [copy_proto(v) for v in graph.value_info if v.name in needed]
    del graph.output[:], graph.node[:], graph.initializer[:], graph.value_info[:]
    graph.output.extend(keep_outputs)
    graph.node.extend(keep_nodes)
    graph.initializer.extend(initializers)
    graph.value_info.extend(value_info)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return True


def runtime_settings() -> dict:
    """How the gate ran each artifact: the device engines' defaults (``xenoedge.export.bundle.runtime``)."""
    return {
        "engine_defaults": True,
        "openvino_precision_hint": "auto (f32 for fp32 on CPU, else the plugin default)",
        "outputs": ["classes"],
        "threads": None,
        "openvino_device": "CPU",
        "onnxruntime_providers": ["CPUExecutionProvider"],
    }


def _build_artifact(
    artifact, spec, fp32: Path, main: Path, calibration, validation, max_drop, method, keep_float, report=None
) -> None:
    from xenoedge.export.fp16 import convert_fp16
    from xenoedge.export.openvino_export import convert_to_ir, quantize_ir_int8
    from xenoedge.export.quantize import quantize_int8

    if artifact.kind == "onnx":
        if artifact.graph_precision == "int8":
            quantize_int8(
                fp32,
                main,
                calibration.inputs,
                method=method,
                keep_float=keep_float,
                placement=spec.int8_placement,
                report=report,
            )
        elif artifact.graph_precision == "fp16":
            convert_fp16(fp32, main)
        else:
            shutil.copy2(fp32, main)
        return
    if artifact.graph_precision == "int8":
        quantize_ir_int8(
            fp32,
            main,
            calibration.inputs,
            validation=list(zip(validation.inputs, validation.truth, strict=True)) if max_drop is not None else None,
            max_drop=max_drop,
            ignored_names=keep_float,
            target_device=spec.nncf_target_device,
        )
    else:
        convert_to_ir(fp32, main, precision=artifact.graph_precision)
