"""The CRI ImageService over the engine's image store and puller."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..distribution.auth import AuthConfig
from ..engine import Engine
from ..errors import NotFound
from ..store.images import Image
from .errors import rpc


class ImageService:
    def __init__(self, pb: Any, engine: Engine) -> None:
        self.pb = pb
        self.engine = engine

    def _image(self, img: Image) -> Any:
        user = (img.config.get("config") or {}).get("User") or ""
        name = user.split(":", 1)[0]
        out = self.pb.Image(id=img.id, repo_tags=img.repo_tags, repo_digests=img.repo_digests,
                            size=self.engine.image_size(img),
                            spec=self.pb.ImageSpec(image=img.id))
        # the CRI's rule: a numeric user is a uid, anything else a name
        if name.isdigit():
            out.uid.value = int(name)
        elif name:
            out.username = name
        return out

    def _resolve(self, spec: Any) -> Image | None:
        try:
            return self.engine.images.resolve(spec.image)
        except NotFound:
            return None

    @rpc
    def ListImages(self, req: Any, ctx: Any) -> Any:
        if req.HasField("filter") and req.filter.image.image:
            img = self._resolve(req.filter.image)
            return self.pb.ListImagesResponse(images=[self._image(img)] if img else [])
        return self.pb.ListImagesResponse(images=[self._image(i) for i in self.engine.images.all()])

    @rpc
    def ImageStatus(self, req: Any, ctx: Any) -> Any:
        img = self._resolve(req.image)
        if img is None:
            return self.pb.ImageStatusResponse()  # not found is no error (kubelet pulls)
        info = {"info": json.dumps({"imageSpec": img.config})} if req.verbose else {}
        return self.pb.ImageStatusResponse(image=self._image(img), info=info)

    @rpc
    def PullImage(self, req: Any, ctx: Any) -> Any:
        a = req.auth
        auth = AuthConfig(username=a.username, password=a.password, auth=a.auth,
                          serveraddress=a.server_address, identitytoken=a.identity_token,
                          registrytoken=a.registry_token) if req.HasField("auth") else None
        images = self.engine.pull(req.image.image, None, auth)
        return self.pb.PullImageResponse(image_ref=images[0].id if images else "")

    @rpc
    def RemoveImage(self, req: Any, ctx: Any) -> Any:
        img = self._resolve(req.image)
        if img is not None:  # else idempotent
            # The CRI removes the image itself, with every name it has.
            self.engine.remove_image(img.id, force=True)
        return self.pb.RemoveImageResponse()

    @rpc
    def ImageFsInfo(self, req: Any, ctx: Any) -> Any:
        home = str(self.engine.driver.home)
        row = self.engine.db.one("SELECT COALESCE(SUM(size), 0) AS n FROM layers")
        st = os.statvfs(home)
        fs = self.pb.FilesystemUsage(timestamp=time.time_ns(),
                                     fs_id=self.pb.FilesystemIdentifier(mountpoint=home))
        fs.used_bytes.value = int(row["n"]) if row else 0
        fs.inodes_used.value = max(0, st.f_files - st.f_ffree)
        return self.pb.ImageFsInfoResponse(image_filesystems=[fs], container_filesystems=[fs])
