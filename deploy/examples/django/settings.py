"""Settings of the example Django service: the least Django needs to serve one view."""

SECRET_KEY = "example-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]  # reached at the pod's IP, by the kubelet's probes and the operator
ROOT_URLCONF = "urls"
INSTALLED_APPS = []
MIDDLEWARE = []
