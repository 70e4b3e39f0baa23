"""Small edits of an ONNX graph in place, shared by the export's graph rewrites
(``classes_only_onnx``, ``channels_last_post``, ``block_argmax``). Takes protobuf messages; imports
nothing heavy."""

from __future__ import annotations

__all__ = ["copy_proto", "drop_unused_initializers"]


def copy_proto(message):
    """A detached copy of a protobuf message (for rebuilding repeated fields)."""
    out = type(message)()
    out.CopyFrom(message)
    return out


def drop_unused_initializers(graph) -> None:
    """Remove the initializers of ``graph`` that no node reads."""
    used = {name for node in graph.node for name in node.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
