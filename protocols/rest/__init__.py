"""HTTP/JSON surfaces of the web port, one module per API surface.

* :mod:`protocols.rest.dashboard` -- session-cookie dashboard API (signup,
  login, keys, storage explorer, SFTP settings);
* :mod:`protocols.rest.files` -- the Simple REST API ``/api/v1/files``;
* :mod:`protocols.rest.common` -- JSON errors, authentication, rate limits;
* form uploads are parsed by :mod:`protocols.multipart_form` (shared with S3 POST Object).
"""
