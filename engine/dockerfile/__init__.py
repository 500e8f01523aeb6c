"""The pure mechanics of building images: the Dockerfile parser, word expansion, `.dockerignore`
matching, instruction metadata and the build context.

Nothing here touches the database or the services; the build itself (running steps, committing
layers, the cache) is in engine/services/build*.py, which is the only user of this package.
"""
