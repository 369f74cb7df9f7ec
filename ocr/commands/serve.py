"""``ocr serve``: the gRPC (and HTTP) server in this process, or as a Ray Serve deployment."""

from __future__ import annotations

import asyncio
import logging

from server.config import RayOptions, ServerConfig, check_servable_on_ray


def run_serve(config: ServerConfig, ray: RayOptions | None = None) -> int:
    """Serve until stopped; with ``ray``, deploy on Ray Serve instead (refused for what Ray cannot serve)."""
    if ray is not None:
        check_servable_on_ray(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ray is not None:
        try:
            from server.ray_serve import serve_on_ray
        except ImportError as exc:
            raise ValueError(f"--ray needs Ray Serve: pip install '.[ray]' ({exc})") from exc
        return serve_on_ray(config, ray)
    from server.app import serve

    return asyncio.run(serve(config))
