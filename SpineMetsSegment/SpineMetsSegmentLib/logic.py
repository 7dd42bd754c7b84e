"""LesionSegmentationLogic: loading cases into MRML and managing lesion segments.

The class is plain Python (no ScriptedLoadableModuleLogic base) so that
``Slicer --no-main-window --python-script`` batch scripts, the ``spinemets``
command and the tests all use the same object; the Slicer module re-exports it.
MRML-facing method names follow Slicer's camelCase.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import SimpleITK as sitk

from SpineMetsCore import dataio, segmentations, volumes
from SpineMetsCore.errors import GeometryError, InputError
from SpineMetsCore.manifest import CaseRow
from SpineMetsCore.progress import ProgressCallback
from SpineMetsCore.qc import QCFlag, validate_image
from SpineMetsCore.runtime import MRMLRuntime, get_runtime, remove_node_tree, temporary_nodes

from .metrics import SegmentationMetrics, compute_metrics
from .seeds import RoiBox, as_ras_points, as_roi

if TYPE_CHECKING:  # imported where used: the U-Net and import paths need no scipy.ndimage/cluster
    from .region_growing import RegionGrowingParameters, RegionGrowingSession

logger = logging.getLogger(__name__)

LESION_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.90, 0.20, 0.20),
    (0.95, 0.60, 0.10),
    (0.85, 0.30, 0.70),
)


@dataclass
class SegmentResult:
    """One segment written by a segmentation method."""

    segmentation_node: Any
    segment_id: str
    segment_name: str
    volume_ml: float
    qc: dict[str, float] = field(default_factory=dict)
    """Method-specific reliability figures (region growing: ROI-border and prior-only surface fractions)."""
    warnings: list[str] = field(default_factory=list)
    """Why the result may be unreliable, in words (empty when nothing was flagged)."""

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.segment_name, "id": self.segment_id, "volume_ml": round(self.volume_ml, 6)}
        if self.qc:
            out["qc"] = dict(self.qc)
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


@dataclass
class LoadedCase:
    """Volume nodes (by sequence) and the lesion segmentation of one case."""

    case_id: str
    volumes: dict[str, Any]
    segmentation: Any | None = None
    segment_ids: dict[int, str] = field(default_factory=dict)


def _check_images(
    images: Mapping[str, sitk.Image], nodes: Mapping[str, Any], paths: Mapping[str, Any] | None = None
) -> list[QCFlag]:
    """Refuse blank, 2-D or NaN images before a method turns them into a "lesion"; log the warnings.

    Inputs are named by their node's file, else ``paths[name]``, else the node or sequence name.
    """
    flags: list[QCFlag] = []
    for name, image in images.items():
        node = nodes.get(name)
        storage = node.GetStorageNode() if node is not None else None
        path = storage.GetFileName() if storage is not None and storage.GetFileName() else (paths or {}).get(name)
        subject = str(path) if path else (f"volume '{node.GetName()}'" if node is not None else f"sequence '{name}'")
        found = validate_image(image, role="image", sequence=name, path=subject)
        for flag in found:
            logger.warning("%s", flag)
        flags += found
    return flags


class LesionSegmentationLogic:
    """Lesion segmentation logic working on MRML volume and segmentation nodes."""

    def __init__(self, runtime: MRMLRuntime | None = None) -> None:
        self._runtime = runtime
        # the last region-growing session (images + ROI + first seed): corrective clicks reuse it
        self._regionGrowingCache: tuple[tuple, RegionGrowingSession, _Crop | None] | None = None
        # QC of each volume's voxels, checked once per content: (sequence, node ID) -> (modified times, warnings)
        self._checkedVolumes: dict[tuple[str, str], tuple[tuple[int, ...], list[QCFlag], bool]] = {}

    @property
    def runtime(self) -> MRMLRuntime:
        """The MRML runtime, made on first use: writing a new file needs no scene (nor slicer-core's import)."""
        if self._runtime is None:
            self._runtime = get_runtime()
        return self._runtime

    @property
    def scene(self) -> Any:
        return self.runtime.scene

    def loadSequences(self, paths: Mapping[str, str | os.PathLike[str]], displayNodes: bool = True) -> dict[str, Any]:
        """Load one volume node per sequence; all must overlap the first physically.

        ``displayNodes=False`` for headless work: no display nodes (no window/level pass over the voxels).
        """
        if not paths:
            raise InputError("sequences", "no image given")
        nodes: dict[str, Any] = {}
        reference: volumes.Geometry | None = None
        try:
            for name, path in paths.items():
                node = dataio.read_volume(path, name=name, sequence=name, display=displayNodes)
                nodes[name] = node
                self._checkVolumes({name: node}, {name: path}, log=False)  # errors now (a view: no copy); warnings when used
                grid = volumes.node_geometry(node)
                if reference is None:
                    reference = grid
                elif not volumes.images_overlap(grid, reference):
                    raise GeometryError(f"sequence '{name}' ({path})", f"does not overlap sequence '{next(iter(paths))}'")
        except Exception:
            for node in nodes.values():
                remove_node_tree(node)  # with its display and storage nodes: the scene is as before
            raise
        return nodes

    def importLabelmapAsSegments(
        self,
        labelmap: str | os.PathLike[str] | sitk.Image,
        referenceVolume: Any,
        names: Mapping[int, str] | None = None,
        segmentationNode: Any | None = None,
        replaceExisting: bool = False,
        colors: Sequence[tuple[float, float, float]] = LESION_COLORS,
    ) -> tuple[Any, dict[int, str]]:
        """Add one named segment per label of ``labelmap`` (resampled to the reference by position)."""
        image = dataio.read_image(labelmap) if not isinstance(labelmap, sitk.Image) else labelmap
        image = volumes.resample_to(image, volumes.volume_to_sitk(referenceVolume), labelmap=True, name=f"labelmap {labelmap}")
        labels = [int(v) for v in np.unique(sitk.GetArrayViewFromImage(image)) if v != 0]
        names = dict(names) if names else {v: f"Lesion {v}" for v in labels}
        specs = [
            segmentations.SegmentSpec(v, names.get(v, f"Lesion {v}"), colors[i % len(colors)])
            for i, v in enumerate(labels)
        ]
        node = segmentationNode or segmentations.new_segmentation_node("Lesions", referenceVolume)
        try:
            node, ids = segmentations.labelmap_to_segmentation(
                sitk.Cast(image, sitk.sitkUInt16), specs, seg_node=node, replace_existing=replaceExisting
            )
        except Exception:
            if segmentationNode is None:
                remove_node_tree(node)
            raise
        return node, ids

    def loadCase(self, row: CaseRow, sequences: Sequence[str] | None = None) -> LoadedCase:
        """Load a manifest row: its sequences and, if present, its lesion mask as segments."""
        chosen = list(sequences) if sequences else list(row.images)
        missing = [s for s in chosen if s not in row.images]
        if missing:
            raise InputError(f"case '{row.case_id}'", f"has no image for sequence(s) {missing}")
        nodes = self.loadSequences({s: row.images[s] for s in chosen})
        loaded = LoadedCase(row.case_id, nodes)
        if row.mask is not None:
            seg, ids = self.importLabelmapAsSegments(row.mask, nodes[chosen[0]])
            seg.SetName(f"{row.case_id}_lesions")
            loaded.segmentation, loaded.segment_ids = seg, ids
        return loaded

    def segmentVolumesMl(self, segmentationNode: Any, referenceVolume: Any) -> dict[str, float]:
        """Volume (mL) of every segment, keyed by segment name."""
        names = segmentations.segment_names(segmentationNode)
        return {
            names[sid]: segmentations.segment_volume_ml(segmentationNode, sid, referenceVolume)
            for sid in segmentations.segment_ids(segmentationNode)
        }

    def saveSegmentation(self, segmentationNode: Any, path: str | os.PathLike[str]) -> Path:
        """Write ``.seg.nrrd`` atomically."""
        return dataio.write_segmentation(segmentationNode, path)

    # ------------------------------------------------------------------
    # Segmentation methods
    # ------------------------------------------------------------------
    def segmentRegionGrowing(
        self,
        volumeNodes: Mapping[str, Any] | Sequence[Any] | Any,
        seeds: Any,
        roi: Any = None,
        segmentationNode: Any | None = None,
        segmentName: str = "Lesion",
        replaceExisting: bool = False,
        parameters: RegionGrowingParameters | Mapping[str, Any] | None = None,
        referenceSequence: str | None = None,
        color: tuple[float, float, float] = LESION_COLORS[0],
        backgroundPoints: Any = None,
    ) -> SegmentResult:
        """Segment one lesion from a click (+ corrective clicks) and store it as a named segment.

        ``volumeNodes``: sequence name -> scalar volume node (or nodes, named by
        their node names); other grids are resampled onto ``referenceSequence``
        (default the first) by physical position, inside the ROI only. ``seeds``:
        RAS point(s) or a markups fiducial node; the first is the lesion's centre,
        later ones are foreground corrections. ``backgroundPoints``: RAS point(s)
        or a markups node of background corrections. ``roi``: None, a markups ROI
        node or RAS corners ``(x0, y0, z0, x1, y1, z1)``. Calling again with the
        same volumes, ROI and first seed reuses the prepared session, so a
        correction costs a fraction of the first click. Every input is checked
        before the segmentation node is touched, so a failing call leaves it as it was.
        """
        from .region_growing import RegionGrowingParameters, RegionGrowingSession, grow_region

        params = RegionGrowingParameters.coerce(parameters)
        nodes = self._namedVolumes(volumeNodes)
        seed_points = as_ras_points(seeds)
        box = as_roi(roi)
        key = (
            tuple((name, node.GetID(), node.GetMTime(), node.GetImageData().GetMTime() if node.GetImageData() else 0)
                  for name, node in nodes.items()),
            box,
            referenceSequence,
            repr(params.as_dict()),
            seed_points[0],
        )
        cached = self._regionGrowingCache if self._regionGrowingCache and self._regionGrowingCache[0] == key else None
        if cached is None:
            self._checkVolumes(nodes)
            images, crop = _region_growing_images(nodes, seed_points[0], box, params, referenceSequence)
            session = RegionGrowingSession(images, seed_points[0], box, params, referenceSequence)
            del images  # the session keeps what it needs
            self._regionGrowingCache = cached = (key, session, crop)
        _, session, crop = cached
        background_points = as_ras_points(backgroundPoints, "background points", allow_empty=True)
        if crop is not None:
            crop.check_clicks(seed_points, background_points, session.box)
        result = grow_region({}, seed_points, box, params, referenceSequence, background_ras=background_points, session=session)
        reference_node = nodes[result.reference_sequence]
        ids = self._addSegments(
            result.mask, [segmentations.SegmentSpec(1, segmentName, tuple(color))], reference_node, segmentationNode, replaceExisting
        )
        node, sid = ids[1]
        return SegmentResult(node, sid, segmentations.segment_names(node)[sid], result.volume_ml, result.qc, result.warnings)

    def segmentImagesRegionGrowingToFile(
        self,
        images: Mapping[str, sitk.Image | Callable[[], sitk.Image]],
        seeds: Any,
        path: str | os.PathLike[str],
        roi: Any = None,
        segmentName: str = "Lesion",
        parameters: RegionGrowingParameters | Mapping[str, Any] | None = None,
        referenceSequence: str | None = None,
        color: tuple[float, float, float] = LESION_COLORS[0],
        backgroundPoints: Any = None,
        sources: Mapping[str, str | os.PathLike[str]] | None = None,
        checked: bool = False,
    ) -> SegmentResult:
        """As :meth:`segmentRegionGrowing` on SimpleITK images into a new ``.seg.nrrd`` file, without a scene.

        ``images``: sequence -> image, or -> a function reading it (e.g. from a
        file): each is then read and checked in turn and cut at once to what the
        session reads, so one whole volume is held at a time. The file is the one a
        new segmentation node would be saved as (the reference sequence's whole
        grid, one segment; :mod:`SpineMetsCore.seg_nrrd`), so a headless run skips
        slicer-core and the volume-node copies. Every sequence must overlap the
        first, as :meth:`loadSequences` requires. ``sources`` (sequence -> file)
        names the inputs in messages; ``checked``: they were checked already. The
        result carries no node.
        """
        from SpineMetsCore.seg_nrrd import write_labelmap_segmentation

        from .region_growing import RegionGrowingParameters, RegionGrowingSession, grow_region

        if not images:
            raise InputError("sequences", "no image given")
        params = RegionGrowingParameters.coerce(parameters)
        seed_points = as_ras_points(seeds)
        background_points = as_ras_points(backgroundPoints, "background points", allow_empty=True)
        box = as_roi(roi)
        names = list(images)
        ref_name = referenceSequence or names[0]

        def read(name: str, check: bool) -> sitk.Image:
            value = images[name]
            image = value if isinstance(value, sitk.Image) else value()
            if check and not checked:
                _check_images({name: image}, {}, sources)
            return image

        whole: dict[str, tuple[sitk.Image, volumes.Geometry]] = {}  # read, not cut yet (waiting for the reference)
        crops: dict[str, sitk.Image] = {}
        session_box: _SessionBox | None = None
        cut = True  # False once a sequence cannot be cut: the session then sees whole volumes (and raises its error)
        first: volumes.Geometry | None = None
        for name in names:
            image = read(name, check=True)
            grid = volumes.Geometry.from_image(image)
            if first is None:
                first = grid
            elif not volumes.images_overlap(grid, first):
                where = (sources or {}).get(name)
                raise GeometryError(f"sequence '{name}'" + (f" ({where})" if where else ""), f"does not overlap sequence '{names[0]}'")
            whole[name] = (image, grid)
            del image
            if name == ref_name:
                session_box = _SessionBox.find(grid, seed_points[0], box, params)
                cut = session_box is not None
            if session_box is not None and cut:
                for held in list(whole):
                    held_image, held_grid = whole[held]
                    part = session_box.part(held_grid)
                    crop = None if part is None else sitk.RegionOfInterest(
                        held_image, [int(h - lo + 1) for lo, h in zip(*part, strict=True)], [int(v) for v in part[0]])
                    if crop is None or not session_box.keeps(held_grid, crop):
                        cut = False
                        break
                    crops[held] = crop
                    del whole[held], held_image
        if session_box is not None and cut:
            session = RegionGrowingSession({name: crops[name] for name in names}, seed_points[0], box, params, referenceSequence)
            del crops
            session_box.crop().check_clicks(seed_points, background_points, session.box)
            result = grow_region({}, seed_points, box, params, referenceSequence, background_ras=background_points, session=session)
            reference = session_box.ref_grid
        else:  # no crop: whole volumes (read again where cut already), as the MRML path does
            full = {name: whole[name][0] if name in whole else read(name, check=False) for name in names}
            result = grow_region(full, seed_points, box, params, referenceSequence, background_ras=background_points)
            reference = volumes.Geometry.from_image(full[result.reference_sequence])
        # The crop's mask on the reference's whole grid: a new node's reference geometry is the whole volume.
        labelmap = sitk.Image([int(v) for v in reference.size], sitk.sitkUInt8)
        volumes.apply_geometry(labelmap, reference)
        at = labelmap.TransformPhysicalPointToIndex(result.mask.GetOrigin())
        labelmap = sitk.Paste(labelmap, result.mask, result.mask.GetSize(), [0, 0, 0], at)
        written = write_labelmap_segmentation(labelmap, [segmentations.SegmentSpec(1, segmentName, tuple(color))], path)
        sid, name = written[1]
        return SegmentResult(None, sid, name, result.volume_ml, result.qc, result.warnings)

    def checkImages(
        self, images: Mapping[str, sitk.Image], sources: Mapping[str, str | os.PathLike[str]] | None = None
    ) -> list[QCFlag]:
        """Refuse blank, 2-D or NaN images (naming ``sources[name]``); log and return the warnings.

        For callers that read files themselves: check every input before any
        other work, then pass ``checked=True`` to :meth:`segmentImagesWithUNet`.
        """
        return _check_images(images, {}, sources)

    def segmentWithUNet(
        self,
        volumeNodes: Mapping[str, Any] | Sequence[Any],
        model: Any,
        segmentationNode: Any | None = None,
        replaceExisting: bool = False,
        forceCpu: bool = False,
        progress: ProgressCallback | None = None,
    ) -> list[SegmentResult]:
        """Segment with a U-Net model package (folder/.zip path or a loaded ModelPackage).

        The package's input sequences must all be among the given volumes (names
        compared case-insensitively); sequences the model does not use are
        ignored. One segment per model label, named and coloured from the card.
        """
        from .unet import load_model_package

        package = load_model_package(model) if isinstance(model, (str, os.PathLike)) else model
        nodes = self._namedVolumes(volumeNodes)
        chosen = match_sequences(package.input_sequences, list(nodes), f"model '{getattr(package, 'source', model)}'")
        images = {seq: volumes.volume_to_sitk(nodes[given]) for seq, given in chosen.items()}
        _check_images(images, {seq: nodes[given] for seq, given in chosen.items()})
        reference_node = nodes[chosen[package.input_sequences[0]]]
        return self.segmentImagesWithUNet(images, package, segmentationNode, replaceExisting, forceCpu, progress, reference_node,
                                          checked=True)

    def segmentImagesWithUNet(
        self,
        images: Mapping[str, sitk.Image],
        model: Any,
        segmentationNode: Any | None = None,
        replaceExisting: bool = False,
        forceCpu: bool = False,
        progress: ProgressCallback | None = None,
        referenceVolume: Any | None = None,
        sources: Mapping[str, str | os.PathLike[str]] | None = None,
        checked: bool = False,
    ) -> list[SegmentResult]:
        """As :meth:`segmentWithUNet` on SimpleITK images (sequence name -> image), e.g. read from files.

        No volume node is needed, so a headless run holds each input's voxels
        once; the new segmentation node takes the first model sequence's grid.
        ``sources`` (sequence -> file) names the inputs in QC messages.
        """
        labelmap, specs = self._unetLabelmap(images, model, forceCpu, progress, sources, checked)
        ids = self._addSegments(labelmap, specs, referenceVolume, segmentationNode, replaceExisting)
        volumes_ml = _label_volumes_ml(labelmap)
        results = []
        for spec in specs:
            node, sid = ids[spec.label]
            name = segmentations.segment_names(node)[sid]
            results.append(SegmentResult(node, sid, name, float(volumes_ml[spec.label])))
        return results

    def segmentImagesWithUNetToFile(
        self,
        images: Mapping[str, sitk.Image],
        model: Any,
        path: str | os.PathLike[str],
        forceCpu: bool = False,
        progress: ProgressCallback | None = None,
        sources: Mapping[str, str | os.PathLike[str]] | None = None,
        checked: bool = False,
    ) -> list[SegmentResult]:
        """As :meth:`segmentImagesWithUNet` into a new ``.seg.nrrd`` file, without a scene.

        The file is the one a new segmentation node would be saved as (same
        segments, names, colours, geometry; :mod:`SpineMetsCore.seg_nrrd`), so a
        headless run skips slicer-core and the node copies. Results carry no node.
        """
        from SpineMetsCore.seg_nrrd import write_labelmap_segmentation

        labelmap, specs = self._unetLabelmap(images, model, forceCpu, progress, sources, checked)
        written = write_labelmap_segmentation(labelmap, specs, path)
        volumes_ml = _label_volumes_ml(labelmap)
        return [SegmentResult(None, *written[spec.label], float(volumes_ml[spec.label])) for spec in specs]

    def _unetLabelmap(
        self,
        images: Mapping[str, sitk.Image],
        model: Any,
        forceCpu: bool,
        progress: ProgressCallback | None,
        sources: Mapping[str, str | os.PathLike[str]] | None,
        checked: bool,
    ) -> tuple[sitk.Image, list[segmentations.SegmentSpec]]:
        """The model's labelmap of one case and the segment (name, colour) of each label value."""
        from .unet import load_model_package, segment_images

        package = load_model_package(model) if isinstance(model, (str, os.PathLike)) else model
        chosen = match_sequences(package.input_sequences, list(images), f"model '{getattr(package, 'source', model)}'")
        selected = {seq: images[given] for seq, given in chosen.items()}
        if not checked:
            _check_images(selected, {}, {seq: (sources or {}).get(given) for seq, given in chosen.items()})
        labelmap = segment_images(selected, package, force_cpu=forceCpu, progress=progress, checked=True)  # checked once
        specs = [
            segmentations.SegmentSpec(int(label["value"]), str(label["name"]), _unit_color(label.get("color")))
            for label in package.labels
        ]
        return labelmap, specs

    def importSegmentationFile(
        self,
        path: str | os.PathLike[str],
        referenceVolume: Any,
        segmentationNode: Any | None = None,
        replaceExisting: bool = False,
    ) -> list[SegmentResult]:
        """Copy every segment of a ``.seg.nrrd`` (e.g. written by a background U-Net run) into a node.

        Names and colours are kept; existing segments are handled as by the
        segmentation methods. The file's temporary node is removed again.
        """
        with temporary_nodes() as temp:
            source = temp.add(dataio.read_segmentation(path))
            ids = segmentations.segment_ids(source)
            if not ids:
                raise InputError(str(path), "contains no segments")
            labelmap, names = segmentations.segmentation_to_labelmap(source, referenceVolume, ids)
            seg = source.GetSegmentation()
            specs = [
                segmentations.SegmentSpec(value, names[value], tuple(seg.GetSegment(ids[value - 1]).GetColor()))
                for value in names
            ]
        added = self._addSegments(labelmap, specs, referenceVolume, segmentationNode, replaceExisting)
        voxel_ml = volumes.voxel_volume_ml(labelmap)
        counts = np.bincount(sitk.GetArrayViewFromImage(labelmap).ravel().astype(np.int64), minlength=len(specs) + 1)
        results = []
        for spec in specs:
            node, sid = added[spec.label]
            results.append(SegmentResult(node, sid, segmentations.segment_names(node)[sid], float(counts[spec.label]) * voxel_ml))
        return results

    # ------------------------------------------------------------------
    # Metrics
    # ------------------------------------------------------------------
    def segmentMask(self, node: Any, segment: str | None = None) -> sitk.Image:
        """Binary mask of a segment (by name or ID; default: union of all segments) or a labelmap node."""
        if node.IsA("vtkMRMLSegmentationNode"):
            ids = segmentations.segment_ids(node)
            if segment is not None:
                sid = segment if segment in ids else segmentations.find_segment_id(node, segment)
                if sid is None:
                    names = list(segmentations.segment_names(node).values())
                    raise InputError(f"segmentation '{node.GetName()}'", f"has no segment '{segment}' (segments: {names})")
                ids = [sid]
            if not ids:
                raise InputError(f"segmentation '{node.GetName()}'", "has no segments")
            image, _ = segmentations.segmentation_to_labelmap(node, None, ids)
            return sitk.Cast(image > 0, sitk.sitkUInt8)
        if node.IsA("vtkMRMLScalarVolumeNode"):
            if segment is not None:
                raise InputError(f"volume '{node.GetName()}'", "is a labelmap; it has no named segments")
            return sitk.Cast(volumes.volume_to_sitk(node) != 0, sitk.sitkUInt8)
        raise InputError(f"node '{node.GetName()}'", "is neither a segmentation nor a labelmap volume")

    def computeSegmentMetrics(
        self,
        referenceNode: Any,
        testNode: Any,
        referenceSegment: str | None = None,
        testSegment: str | None = None,
    ) -> SegmentationMetrics:
        """Dice, Jaccard, HD95, MSD and volume difference of two segments, on physical geometry."""
        return compute_metrics(self.segmentMask(referenceNode, referenceSegment), self.segmentMask(testNode, testSegment))

    def computeFileMetrics(
        self,
        reference: str | os.PathLike[str],
        test: str | os.PathLike[str],
        referenceSegment: str | None = None,
        testSegment: str | None = None,
    ) -> SegmentationMetrics:
        """:meth:`computeSegmentMetrics` on two files (.seg.nrrd or labelmaps); adds no node to the scene."""
        with temporary_nodes() as temp:
            loaded = [temp.add(dataio.read_segmentation(path)) for path in (reference, test)]
            try:
                return self.computeSegmentMetrics(loaded[0], loaded[1], referenceSegment, testSegment)
            except InputError as exc:  # name the files, not only "test mask"
                raise type(exc)(f"{exc.what} (reference {reference}, test {test})", exc.problem) from exc

    def runReaderStudy(
        self,
        cohort: str | os.PathLike[str],
        outCsv: str | os.PathLike[str] | None = None,
        summaryCsv: str | os.PathLike[str] | None = None,
        createTables: bool = True,
    ) -> Any:
        """Reader study (with vs without model assistance): per-case metrics and paired tests.

        Returns a :class:`~SpineMetsSegmentLib.reader_study.ReaderStudyResult`;
        tables go to table nodes (``createTables``) and CSVs with provenance.
        """
        from . import reader_study

        result = reader_study.run_reader_study(cohort, self.computeFileMetrics)
        if createTables:
            from SpineMetsCore.tables import dataframe_to_table_node

            result.metrics_table = dataframe_to_table_node(result.per_case, "ReaderStudyMetrics", prov=result.provenance)
            result.summary_table = dataframe_to_table_node(result.summary, "ReaderStudySummary", prov=result.provenance)
        reader_study.write_results(result, outCsv, summaryCsv)
        return result

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------
    def _checkVolumes(self, nodes: Mapping[str, Any], paths: Mapping[str, Any] | None = None, log: bool = True) -> list[QCFlag]:
        """QC of every volume on a view of its voxels; a volume whose voxels have not changed is checked once.

        Errors raise every time (nothing is kept for a failing volume); warnings are
        logged once, by the first call with ``log``, and returned on every call.
        """
        flags: list[QCFlag] = []
        for name, node in nodes.items():
            image_data = node.GetImageData()
            scalars = image_data.GetPointData().GetScalars() if image_data is not None else None
            stamp = (node.GetMTime(), image_data.GetMTime() if image_data else 0, scalars.GetMTime() if scalars else 0)
            known = self._checkedVolumes.get((name, node.GetID()))
            if known is None or known[0] != stamp:
                subject = _node_file(node) or (paths or {}).get(name)
                found = validate_image(volumes.volume_to_array(node, copy=False), role="image", sequence=name,
                                       path=str(subject) if subject else f"volume '{node.GetName()}'")
                known = (stamp, found, False)
            if log and not known[2]:
                for flag in known[1]:
                    logger.warning("%s", flag)
                known = (known[0], known[1], True)
            self._checkedVolumes[(name, node.GetID())] = known
            flags += known[1]
        return flags

    def _namedVolumes(self, volumeNodes: Mapping[str, Any] | Sequence[Any] | Any) -> dict[str, Any]:
        if isinstance(volumeNodes, Mapping):
            nodes = {str(k): v for k, v in volumeNodes.items() if v is not None}
        elif hasattr(volumeNodes, "IsA"):
            nodes = {volumeNodes.GetName(): volumeNodes}
        else:
            nodes = {n.GetName(): n for n in volumeNodes if n is not None}
        if not nodes:
            raise InputError("sequences", "no volume given")
        for name, node in nodes.items():
            if not hasattr(node, "IsA") or not node.IsA("vtkMRMLScalarVolumeNode") or node.IsA("vtkMRMLLabelMapVolumeNode"):
                raise InputError(f"sequence '{name}'", "is not a scalar volume node")
        return nodes

    def _addSegments(
        self,
        labelmap: sitk.Image,
        specs: Sequence[segmentations.SegmentSpec],
        referenceVolume: Any | None,
        segmentationNode: Any | None,
        replaceExisting: bool,
    ) -> dict[int, tuple[Any, str]]:
        """Add one segment per spec; replaced segments are removed only after the import worked."""
        created = segmentationNode is None
        node = segmentationNode or segmentations.new_segmentation_node("Lesions", referenceVolume)
        if not created and referenceVolume is not None and node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()) is None and (
            node.GetSegmentation().GetNumberOfSegments() == 0
        ):
            node.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolume)
        try:
            # Core replaces a same-name segment only after the import worked (one implementation).
            node, ids = segmentations.labelmap_to_segmentation(
                sitk.Cast(labelmap, sitk.sitkUInt16), list(specs), seg_node=node, replace_existing=replaceExisting
            )
        except Exception:
            if created:
                remove_node_tree(node)
            raise
        return {label: (node, sid) for label, sid in ids.items()}


def _node_file(node: Any) -> str | None:
    storage = node.GetStorageNode()
    return storage.GetFileName() if storage is not None and storage.GetFileName() else None


@dataclass(frozen=True)
class _Crop:
    """Where a region-growing session's reference crop lies on the whole reference grid."""

    geometry: volumes.Geometry
    """The whole reference grid."""
    lo: np.ndarray
    hi: np.ndarray

    def check_clicks(self, seeds: Sequence[Any], backgrounds: Sequence[Any], box: Any) -> None:
        """The errors a session on the whole volume gives for clicks off the image or off the ROI.

        The session only sees the crop, where a click outside the ROI would read
        as "outside the image"; the whole grid decides which of the two it is.
        """
        proxy = volumes.index_proxy(self.geometry)
        size = np.asarray(self.geometry.size)

        def index(ras: Any, what: str) -> np.ndarray:
            cont = proxy.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in volumes.ras_to_lps(ras)))
            ijk = np.round(np.asarray(cont)).astype(int)
            if np.any(ijk < 0) or np.any(ijk >= size):
                raise InputError(what, f"RAS {tuple(round(float(v), 2) for v in ras[:3])} lies outside the image")
            return ijk

        for n, point in enumerate(seeds):
            index(point, f"seed {n + 1}")
        at = [index(point, f"background point {n + 1}") for n, point in enumerate(backgrounds)]
        for n, point in enumerate(seeds):
            if not box.contains(point):
                raise InputError(f"seed {n + 1}", f"RAS {tuple(round(v, 2) for v in point)} lies outside the {box.name}")
        for n, ijk in enumerate(at):
            if np.any(ijk < self.lo) or np.any(ijk > self.hi):
                raise InputError(f"background point {n + 1}", f"lies outside the {box.name}")


@dataclass(frozen=True)
class _SessionBox:
    """The index box a region-growing session cuts from the whole reference grid, and what other grids must cover."""

    ref_grid: volumes.Geometry
    lo: np.ndarray
    hi: np.ndarray
    crop_grid: volumes.Geometry
    corners_lps: np.ndarray

    @classmethod
    def find(cls, ref_grid: volumes.Geometry, seed: Any, box: RoiBox | None, params: RegionGrowingParameters) -> _SessionBox | None:
        """None where no crop exists (seed outside the ROI, ROI off the image): the session then sees whole volumes."""
        region = box if box is not None else RoiBox.around([seed], params.default_roi_margin_mm)
        bounds = volumes.index_box(ref_grid, volumes.ras_to_lps(region.corners_ras()), pad=1) if region.contains(seed) else None
        if bounds is None:
            return None
        lo, hi = bounds
        crop_grid = volumes.crop_geometry(ref_grid, lo, hi)
        corners = np.array([[i, j, k, 1.0] for i in (0, crop_grid.size[0] - 1) for j in (0, crop_grid.size[1] - 1)
                            for k in (0, crop_grid.size[2] - 1)])
        return cls(ref_grid, lo, hi, crop_grid, (crop_grid.ijk_to_lps() @ corners.T).T[:, :3])

    def part(self, grid: volumes.Geometry) -> tuple[np.ndarray, np.ndarray] | None:
        """The index box of ``grid`` to keep: the session's own box on the reference grid, else its cover + 2 voxels."""
        if grid.same_grid(self.ref_grid):
            return self.lo, self.hi
        return volumes.index_box(grid, self.corners_lps, pad=2) if volumes.images_overlap(grid, self.ref_grid) else None

    def keeps(self, grid: volumes.Geometry, crop: sitk.Image) -> bool:
        """A crop of another grid must still overlap the session's crop (else the session's own error is wanted)."""
        return grid.same_grid(self.ref_grid) or volumes.images_overlap(crop, self.crop_grid)

    def crop(self) -> _Crop:
        return _Crop(self.ref_grid, self.lo, self.hi)


def _region_growing_images(
    nodes: Mapping[str, Any], seed: Any, box: RoiBox | None, params: RegionGrowingParameters, reference: str | None
) -> tuple[dict[str, sitk.Image], _Crop | None]:
    """Only the voxels a region-growing session reads: each sequence's crop around the ROI, never a whole volume.

    The reference sequence (and every sequence on its grid) is cropped to the very
    index box the session cuts from a whole volume (the ROI's box + 1 voxel), with
    the same voxels at the same positions; other grids to the box covering that
    crop + 2 voxels, all that linear interpolation onto it reads. Where no crop
    exists (seed outside the ROI, ROI or a sequence off the image) whole volumes are
    returned with no crop, so the session raises the error it always did.
    """
    ref_name = reference or next(iter(nodes))
    if ref_name in nodes:
        ref_grid = volumes.node_geometry(nodes[ref_name])
        session_box = _SessionBox.find(ref_grid, seed, box, params)
        if session_box is not None:
            images: dict[str, sitk.Image] = {}
            for name, node in nodes.items():
                grid = ref_grid if node is nodes[ref_name] else volumes.node_geometry(node)
                part = session_box.part(grid)
                if part is None:
                    break
                images[name] = volumes.volume_crop_to_sitk(node, *part, grid)
                if not session_box.keeps(grid, images[name]):
                    break
            else:
                return images, session_box.crop()
    return {name: volumes.volume_to_sitk(node) for name, node in nodes.items()}, None


def match_sequences(required: Sequence[str], given: Sequence[str], what: str) -> dict[str, str]:
    """Map each required sequence to a given one (exact, else case-insensitive); clear error otherwise."""
    lookup = {g.lower(): g for g in given}
    chosen: dict[str, str] = {}
    for seq in required:
        if seq in given:
            chosen[seq] = seq
        elif seq.lower() in lookup:
            chosen[seq] = lookup[seq.lower()]
    missing = [s for s in required if s not in chosen]
    if missing:
        raise InputError(what, f"expects input sequences {list(required)} but got {list(given)} (missing {missing})")
    return chosen


def _label_volumes_ml(labelmap: sitk.Image) -> np.ndarray:
    """Volume (mL) of every UInt8 label value, indexed by value."""
    counts = np.bincount(sitk.GetArrayViewFromImage(labelmap).ravel(), minlength=256)
    return counts * volumes.voxel_volume_ml(labelmap)


def _unit_color(color: Any) -> tuple[float, float, float] | None:
    """Colour as three floats in 0..1 (cards may use 0..255)."""
    if color is None:
        return None
    values = [float(c) for c in color][:3]
    if any(v > 1.0 for v in values):
        values = [v / 255.0 for v in values]
    return (values[0], values[1], values[2])
