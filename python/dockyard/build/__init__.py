"""Build: the classic Dockerfile builder behind `POST /build` (contexts,
.dockerignore, instructions, the build cache), over the container service.
"""
