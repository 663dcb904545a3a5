from rest_framework.routers import SimpleRouter

from users.api.views import UserViewSet

router = SimpleRouter(trailing_slash=False)
router.register("users", UserViewSet, basename="users")

urlpatterns = router.urls
