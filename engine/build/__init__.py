"""Building images: the Dockerfile parser, the build context, layer diffs and the step runner.

The public entry points are the service functions in engine/services/builds.py (build, commit);
nothing outside the engine should import this package directly.
"""
