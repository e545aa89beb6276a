"""The HTTP edge: what every request passes through (auth, admission, rate limits,
body limits, errors, the OpenAPI document) and the signatures shoppers and merchants carry."""
