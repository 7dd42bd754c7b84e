"""The MRML runtime: desktop Slicer's scene, or a headless one built on slicer-core.

Inside desktop Slicer (``slicer.app`` exists) everything here returns Slicer's own
scene and module logics. Under plain Python (PyPI ``slicer-core``) there is no
application, so :func:`get_runtime` builds the same objects Slicer's
application would: a real ``vtkMRMLScene`` with application, colour,
subject-hierarchy, volumes and segmentations logics, registers the
segmentation converter rules, and assigns ``slicer.mrmlScene`` so that
``slicer.util`` array helpers work. The logics are kept referenced by the
:class:`MRMLRuntime` object for the life of the process: dropping the
application logic while the scene lives crashes VTK.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_runtime: MRMLRuntime | None = None


@dataclass
class MRMLRuntime:
    """A scene and the logics that operate on it."""

    scene: Any
    app_logic: Any
    color_logic: Any
    volumes_logic: Any
    segmentations_logic: Any
    subject_hierarchy_logic: Any
    in_slicer_app: bool
    _keepalive: list[Any] = field(default_factory=list, repr=False)

    def clear(self) -> None:
        """Remove data nodes, keeping singletons such as default colour tables."""
        self.scene.Clear(False)


def in_slicer_application() -> bool:
    """True when running inside desktop Slicer (or ``Slicer --no-main-window``)."""
    import slicer

    return hasattr(slicer, "app") and hasattr(slicer, "modules")


def show_table_in_layout(table: Any) -> None:
    """Switch desktop Slicer to a layout with a table view and show ``table`` there; headless, nothing to show."""
    if not in_slicer_application():
        return
    import slicer

    layoutManager = slicer.app.layoutManager()
    if layoutManager is not None:
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
    slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
    slicer.app.applicationLogic().PropagateTableSelection()


def _register_converter_rules() -> None:
    """Register labelmap<->surface rules once; the factory is a process singleton."""
    import slicer

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    have = {rule.GetClassName() for rule in factory.GetConverterRules()}
    for cls in (
        slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
        slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule,
        slicer.vtkClosedSurfaceToFractionalLabelmapConversionRule,
        slicer.vtkFractionalLabelmapToClosedSurfaceConversionRule,
    ):
        if cls.__name__ not in have:
            factory.RegisterConverterRule(cls())


def _from_slicer_application() -> MRMLRuntime:
    import slicer

    return MRMLRuntime(
        scene=slicer.mrmlScene,
        app_logic=slicer.app.applicationLogic(),
        color_logic=slicer.modules.colors.logic(),
        volumes_logic=slicer.modules.volumes.logic(),
        segmentations_logic=slicer.modules.segmentations.logic(),
        subject_hierarchy_logic=slicer.modules.subjecthierarchy.logic(),
        in_slicer_app=True,
    )


def _build_headless() -> MRMLRuntime:
    import slicer

    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)

    # vtkSlicerColorLogic would also search color files under the application home
    # directory, which slicer-core does not ship; the MRML base logic adds the
    # same built-in default colour tables without that (noisy) search.
    color_logic = slicer.vtkMRMLColorLogic()
    color_logic.SetMRMLApplicationLogic(app_logic)
    color_logic.SetMRMLScene(scene)
    if scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode") == 0:
        color_logic.AddDefaultColorNodes()

    sh_logic = slicer.vtkSlicerSubjectHierarchyModuleLogic()
    sh_logic.SetMRMLApplicationLogic(app_logic)
    sh_logic.SetMRMLScene(scene)

    volumes_logic = slicer.vtkSlicerVolumesLogic()
    volumes_logic.SetMRMLApplicationLogic(app_logic)
    volumes_logic.SetMRMLScene(scene)

    seg_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    seg_logic.SetMRMLApplicationLogic(app_logic)
    seg_logic.SetMRMLScene(scene)

    for name, logic in (
        ("Colors", color_logic),
        ("SubjectHierarchy", sh_logic),
        ("Volumes", volumes_logic),
        ("Segmentations", seg_logic),
    ):
        app_logic.SetModuleLogic(name, logic)

    _register_converter_rules()
    slicer.mrmlScene = scene
    logger.debug("headless MRML runtime created (slicer-core)")
    return MRMLRuntime(
        scene=scene,
        app_logic=app_logic,
        color_logic=color_logic,
        volumes_logic=volumes_logic,
        segmentations_logic=seg_logic,
        subject_hierarchy_logic=sh_logic,
        in_slicer_app=False,
        _keepalive=[app_logic, color_logic, sh_logic, volumes_logic, seg_logic],
    )


def get_runtime() -> MRMLRuntime:
    """Return the process-wide runtime, creating the headless one on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = _from_slicer_application() if in_slicer_application() else _build_headless()
        return _runtime


def get_scene() -> Any:
    """The MRML scene all SpineMets logic works in."""
    return get_runtime().scene


def remove_node_tree(node: Any) -> None:
    """Remove a (temporary) node with its display, storage and colour-table nodes.

    ``vtkMRMLScene.RemoveNode`` leaves a node's display and storage nodes (and
    the colour table a labelmap export creates) in the scene; temporary nodes
    must not leave such litter behind.
    """
    if node is None:
        return
    scene = node.GetScene()
    if scene is None:
        return
    dependents = []
    if hasattr(node, "GetNumberOfDisplayNodes"):
        for i in range(node.GetNumberOfDisplayNodes()):
            display = node.GetNthDisplayNode(i)
            if display is not None:
                dependents.append(display)
                color = display.GetColorNode() if hasattr(display, "GetColorNode") else None
                # Only colour tables made for this node (e.g. "<segmentation>_ColorTable"), never shared defaults.
                if color is not None and not color.GetSingletonTag() and color.IsA("vtkMRMLColorTableNode"):
                    users = [n for n in _nodes_referencing(scene, color) if n is not display]
                    if not users:
                        dependents.append(color)
    if hasattr(node, "GetStorageNode") and node.GetStorageNode() is not None:
        dependents.append(node.GetStorageNode())
    scene.RemoveNode(node)
    for dependent in dependents:
        if dependent.GetScene() is scene:
            scene.RemoveNode(dependent)


class TemporaryNodes:
    """Nodes that :func:`temporary_nodes` removes (with their display and storage nodes)."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []

    def add(self, node: Any) -> Any:
        """Register ``node`` for removal and return it (``seg = temp.add(read_segmentation(p))``)."""
        if node is not None:
            self.nodes.append(node)
        return node

    def keep(self, node: Any) -> Any:
        """Take ``node`` back out of the removal list (it became a result) and return it."""
        self.nodes = [n for n in self.nodes if n is not node]
        return node


@contextlib.contextmanager
def temporary_nodes() -> Iterator[TemporaryNodes]:
    """Remove the nodes registered in the block when it ends, on success and on error.

    Each node goes with its display, storage and private colour-table nodes
    (:func:`remove_node_tree`), so a 500-case batch leaves the scene as it found it.
    """
    temp = TemporaryNodes()
    try:
        yield temp
    finally:
        for node in reversed(temp.nodes):
            remove_node_tree(node)


def _nodes_referencing(scene: Any, target: Any) -> list[Any]:
    found = []
    target_id = target.GetID()
    for i in range(scene.GetNumberOfNodes()):
        n = scene.GetNthNode(i)
        for r in range(n.GetNumberOfNodeReferenceRoles()):
            role = n.GetNthNodeReferenceRole(r)
            for k in range(n.GetNumberOfNodeReferences(role)):
                if n.GetNthNodeReferenceID(role, k) == target_id:
                    found.append(n)
    return found
