"""HTTP/JSON surfaces of the web port, one module per API surface.

* :mod:`protocols.rest.dashboard` -- session-cookie dashboard API (signup,
  login, keys, storage explorer, SFTP settings);
* :mod:`protocols.rest.files` -- the Simple REST API ``/api/v1/files``;
* :mod:`protocols.rest.common` -- JSON errors, authentication, rate limits;
* :mod:`protocols.rest.formdata` -- an incremental multipart/form-data parser.
"""
