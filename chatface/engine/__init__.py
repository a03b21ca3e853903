"""The engine: plugin core, types, and the Engine that ties plugins together."""
