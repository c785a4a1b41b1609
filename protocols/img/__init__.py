"""Image transformations (``/api/img/{bucket}/{path}``): the engine.

- ``params``: parse and validate the query, canonical cache key (sans-I/O);
- ``negotiate``: the output format from the Accept header (sans-I/O);
- ``geometry``: output sizes, boxes and anchors (sans-I/O);
- ``transform``: libvips pipeline, limits, the trio wrapper;
- ``singleflight``: identical concurrent requests compute once;
- ``errors``: typed errors carrying the HTTP status the endpoint answers.

The endpoint's flow: ``parse_params`` -> ``choose_format`` (unless ``format``
was given; answer with ``Vary: Accept``) -> cache key from the source's
identity and ``params.canonical(fmt)`` -> on a miss,
``SingleFlight.run(key, lambda: transform_async(source, params, fmt))``.
"""
