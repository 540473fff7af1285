"""moto's server with the SQS behaviour that the AWS provider relies on and moto 5.2.5 gets wrong.

Found by applying terraform/modules/queue to moto (terraform/README.md, "What is and is not checked"):
1. `SetQueueAttributes` accepts `RedriveAllowPolicy` but `GetQueueAttributes` never returns it (and refuses it by
   name), so `aws_sqs_queue_redrive_allow_policy` waits for it until the provider times out: the "hang".
2. Every `SetQueueAttributes` call that does not carry `Policy` resets the queue's policy to none, so setting the
   redrive policies wipes the TLS-only queue policy that `aws_sqs_queue_policy` set.
3. `RedrivePolicy` comes back as `json.dumps` with spaces; SQS answers compact JSON. The provider keeps moto's
   text in the state and then plans a "whitespace change" on `aws_sqs_queue.redrive_policy`, which also defers the
   queue policy documents to apply time: drift right after apply.
With the three patched, the queue example applies, plans no changes and destroys (checked with the AWS provider
5.100.0; see terraform/README.md). test_moto_for_terraform.py keeps each patch honest: it fails once moto itself
is fixed, so that the patch can go.

Run as `python -m tests.terraform.moto_for_terraform -H 127.0.0.1 -p PORT` (moto.server's arguments).
"""

from __future__ import annotations

import fnmatch
import json
import sys
import threading
import uuid
from typing import Any
from urllib.parse import unquote, urlparse


def patch_sqs() -> None:
    from moto.sqs import models

    queue_class: Any = models.Queue
    if "RedriveAllowPolicy" in queue_class.BASE_ATTRIBUTES:
        return  # already patched
    queue_class.BASE_ATTRIBUTES = [*queue_class.BASE_ATTRIBUTES, "RedriveAllowPolicy"]
    original_set = queue_class._set_attributes
    original_attributes = queue_class.attributes.fget

    # The provider sets a queue's policy and its redrive policies concurrently (werkzeug serves each request on its
    # own thread): the lock keeps a redrive call from reading the policy before the policy call sets it and then
    # putting that stale value back.
    lock = threading.Lock()

    def _set_attributes(self: Any, attributes: dict[str, Any], now: float | None = None) -> None:
        with lock:
            policy = getattr(self, "policy", None)
            if not hasattr(self, "redrive_allow_policy"):
                self.redrive_allow_policy = None
            original_set(self, attributes, now)
            if "Policy" not in attributes:
                self.policy = policy

    def attributes(self: Any) -> dict[str, Any]:
        result: dict[str, Any] = original_attributes(self)
        if not result.get("RedriveAllowPolicy"):
            result.pop("RedriveAllowPolicy", None)
        if self.redrive_policy:
            result["RedrivePolicy"] = json.dumps(self.redrive_policy, separators=(",", ":"))
        return result

    queue_class._set_attributes = _set_attributes
    queue_class.attributes = property(attributes)


def patch_athena() -> None:
    """4. moto has no DeleteNamedQuery (the server answers 500: not implemented), so destroying the catalog's
    `aws_athena_named_query` retries until the provider gives up; and GetNamedQuery of an unknown ID fails on
    None (500) instead of answering InvalidRequestException, which the provider reads as "gone"."""
    from moto.athena.responses import AthenaResponse

    response_class: Any = AthenaResponse
    if hasattr(response_class, "delete_named_query"):
        return
    original_get = response_class.get_named_query

    def delete_named_query(self: Any) -> str:
        self.athena_backend.named_queries.pop(self._get_param("NamedQueryId"), None)
        return "{}"

    def get_named_query(self: Any) -> Any:
        query_id = self._get_param("NamedQueryId")
        if self.athena_backend.get_named_query(query_id) is None:
            return self.error(f"NamedQuery {query_id} was not found", 400)
        return original_get(self)

    response_class.delete_named_query = delete_named_query
    response_class.get_named_query = get_named_query


def _eks_cluster(response: Any) -> Any:
    from moto.eks.exceptions import ResourceNotFoundException

    name = response._get_param("clusterName") or response._get_param("name")
    cluster = response.eks_backend.clusters.get(name)
    if cluster is None:
        raise ResourceNotFoundException(
            clusterName=name,
            nodegroupName=None,
            fargateProfileName=None,
            addonName=None,
            message=f"No cluster found for name: {name}.",
        )
    return cluster


def _eks_not_found(message: str) -> Exception:
    from moto.eks.exceptions import ResourceNotFoundException

    return ResourceNotFoundException(
        clusterName=None, nodegroupName=None, fargateProfileName=None, addonName=None, message=message
    )


def patch_eks() -> None:
    """5. EKS add-ons and access entries have no routes in moto (CreateAddon and CreateAccessEntry answer 404).
    Served here from dicts on moto's cluster: created ACTIVE at once, deleted at once (so the provider's waiters
    end on the first read), with the fields of the API's shapes that the provider reads.
    6. DescribeCluster never returns `accessConfig`, so the provider reads `bootstrap_cluster_creator_admin_permissions`
    as unset and the next plan replaces the cluster (that argument forces a new one). Kept from CreateCluster, with
    EKS's default authentication mode (CONFIG_MAP) when none was given.
    7. `resourcesVpcConfig` has no `clusterSecurityGroupId` (nor `vpcId`): EKS creates a cluster security group in the
    cluster's VPC, and the ingress module adds its rules to it (`The security group '' does not exist` on moto). A
    real security group is made in moto's EC2 for it, and removed with the cluster so that the VPC can go.
    13. Every cluster gets the same OIDC issuer (moto draws its random ID once, at import), so a second cluster's
    `aws_iam_openid_connect_provider` fails with EntityAlreadyExists. Each cluster gets its own, as in EKS."""
    from moto.core.utils import utcnow
    from moto.ec2.models import ec2_backends
    from moto.eks import urls
    from moto.eks.models import EKSBackend
    from moto.eks.responses import EKSResponse

    response_class: Any = EKSResponse
    if hasattr(response_class, "create_addon"):
        return
    # moto's server routes by these regexes into EKSResponse, which then finds the operation from botocore's model.
    for path in ("addons", "access-entries"):
        urls.url_paths[f"{{0}}/clusters/(?P<name>[^/]+)/{path}$"] = urls.response.dispatch
        urls.url_paths[f"{{0}}/clusters/(?P<name>[^/]+)/{path}/(?P<rest>.+)$"] = urls.response.dispatch

    def addon(self: Any) -> dict[str, Any]:
        addons: dict[str, Any] = _eks_cluster(self).__dict__.setdefault("terraform_addons", {})
        found = addons.get(self._get_param("addonName"))
        if found is None:
            raise _eks_not_found(
                f"No addon: {self._get_param('addonName')} found in cluster: {_eks_cluster(self).name}"
            )
        return dict(found)

    def create_addon(self: Any) -> Any:
        from moto.core.responses import ActionResult

        cluster = _eks_cluster(self)
        name = self._get_param("addonName")
        now = utcnow()
        item = {
            "addonName": name,
            "clusterName": cluster.name,
            "status": "ACTIVE",
            "addonVersion": self._get_param("addonVersion") or "v0.0.0-eksbuild.1",
            "health": {"issues": []},
            "addonArn": f"{cluster.arn.replace(':cluster/', ':addon/')}/{name}/{uuid.uuid4()}",
            "createdAt": now,
            "modifiedAt": now,
            "serviceAccountRoleArn": self._get_param("serviceAccountRoleArn"),
            "tags": self._get_param("tags") or {},
            "configurationValues": self._get_param("configurationValues"),
        }
        cluster.__dict__.setdefault("terraform_addons", {})[name] = item
        return ActionResult({"addon": item})

    def describe_addon(self: Any) -> Any:
        from moto.core.responses import ActionResult

        return ActionResult({"addon": addon(self)})

    def delete_addon(self: Any) -> Any:
        from moto.core.responses import ActionResult

        found = addon(self)
        del _eks_cluster(self).terraform_addons[found["addonName"]]
        return ActionResult({"addon": {**found, "status": "DELETING"}})

    def update_addon(self: Any) -> Any:
        from moto.core.responses import ActionResult

        found = addon(self)
        for key in ("addonVersion", "serviceAccountRoleArn", "configurationValues"):
            if self._get_param(key) is not None:
                found[key] = self._get_param(key)
        found["modifiedAt"] = utcnow()
        _eks_cluster(self).terraform_addons[found["addonName"]] = found
        update = {"id": str(uuid.uuid4()), "status": "Successful", "type": "AddonUpdate", "params": [], "errors": []}
        _eks_cluster(self).__dict__.setdefault("terraform_updates", {})[update["id"]] = update
        return ActionResult({"update": {**update, "createdAt": utcnow()}})

    def list_addons(self: Any) -> Any:
        from moto.core.responses import ActionResult

        return ActionResult({"addons": sorted(_eks_cluster(self).__dict__.get("terraform_addons", {}))})

    def entries(self: Any) -> dict[str, Any]:
        result: dict[str, Any] = _eks_cluster(self).__dict__.setdefault("terraform_access_entries", {})
        return result

    def entry(self: Any) -> dict[str, Any]:
        principal = unquote(self._get_param("principalArn"))
        found: dict[str, Any] | None = entries(self).get(principal)
        if found is None:
            raise _eks_not_found(f"The specified principalArn could not be found: {principal}")
        return found

    def public(item: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in item.items() if key != "policies"}

    def create_access_entry(self: Any) -> Any:
        from moto.core.responses import ActionResult

        cluster = _eks_cluster(self)
        principal = self._get_param("principalArn")
        now = utcnow()
        item = {
            "clusterName": cluster.name,
            "principalArn": principal,
            "kubernetesGroups": self._get_param("kubernetesGroups") or [],
            "accessEntryArn": f"{cluster.arn.replace(':cluster/', ':access-entry/')}/role/{uuid.uuid4()}",
            "createdAt": now,
            "modifiedAt": now,
            "tags": self._get_param("tags") or {},
            "username": self._get_param("username") or principal,
            "type": self._get_param("type") or "STANDARD",
            "policies": {},
        }
        entries(self)[principal] = item
        return ActionResult({"accessEntry": public(item)})

    def describe_access_entry(self: Any) -> Any:
        from moto.core.responses import ActionResult

        return ActionResult({"accessEntry": public(entry(self))})

    def update_access_entry(self: Any) -> Any:
        from moto.core.responses import ActionResult

        found = entry(self)
        for key in ("kubernetesGroups", "username"):
            if self._get_param(key) is not None:
                found[key] = self._get_param(key)
        found["modifiedAt"] = utcnow()
        return ActionResult({"accessEntry": public(found)})

    def delete_access_entry(self: Any) -> Any:
        from moto.core.responses import EmptyResult

        del entries(self)[entry(self)["principalArn"]]
        return EmptyResult()

    def list_access_entries(self: Any) -> Any:
        from moto.core.responses import ActionResult

        return ActionResult({"accessEntries": sorted(entries(self))})

    def associate_access_policy(self: Any) -> Any:
        from moto.core.responses import ActionResult

        found = entry(self)
        now = utcnow()
        policy = {
            "policyArn": self._get_param("policyArn"),
            "accessScope": self._get_param("accessScope"),
            "associatedAt": now,
            "modifiedAt": now,
        }
        found["policies"][policy["policyArn"]] = policy
        return ActionResult(
            {
                "clusterName": found["clusterName"],
                "principalArn": found["principalArn"],
                "associatedAccessPolicy": policy,
            }
        )

    def list_associated_access_policies(self: Any) -> Any:
        from moto.core.responses import ActionResult

        found = entry(self)
        return ActionResult(
            {
                "clusterName": found["clusterName"],
                "principalArn": found["principalArn"],
                "associatedAccessPolicies": list(found["policies"].values()),
            }
        )

    def disassociate_access_policy(self: Any) -> Any:
        from moto.core.responses import EmptyResult

        found = entry(self)
        policy = unquote(self._get_param("policyArn"))
        if policy not in found["policies"]:
            raise _eks_not_found(f"The specified policy is not associated: {policy}")
        del found["policies"][policy]
        return EmptyResult()

    for function in (
        create_addon,
        describe_addon,
        delete_addon,
        update_addon,
        list_addons,
        create_access_entry,
        describe_access_entry,
        update_access_entry,
        delete_access_entry,
        list_access_entries,
        associate_access_policy,
        list_associated_access_policies,
        disassociate_access_policy,
    ):
        setattr(response_class, function.__name__, function)

    original_create = response_class.create_cluster

    def create_cluster(self: Any) -> Any:
        result = original_create(self)
        cluster = self.eks_backend.clusters[self._get_param("name")]
        given = self._get_param("accessConfig") or {}
        cluster.access_config = {
            "authenticationMode": given.get("authenticationMode", "CONFIG_MAP"),
            "bootstrapClusterCreatorAdminPermissions": given.get("bootstrapClusterCreatorAdminPermissions", True),
        }
        ec2 = ec2_backends[self.current_account][self.region]
        vpc_config = cluster.resources_vpc_config
        vpc_id = ec2.get_subnet(vpc_config["subnetIds"][0]).vpc_id
        group = ec2.create_security_group(
            name=f"eks-cluster-sg-{cluster.name}-{uuid.uuid4().hex[:8]}",
            description="EKS created security group applied to ENI that is attached to EKS Control Plane master nodes",
            vpc_id=vpc_id,
            tags={f"kubernetes.io/cluster/{cluster.name}": "owned"},
        )
        vpc_config["clusterSecurityGroupId"] = group.id
        cluster.identity = {
            "oidc": {"issuer": f"https://oidc.eks.{self.region}.amazonaws.com/id/{uuid.uuid4().hex.upper()}"}
        }
        vpc_config["vpcId"] = vpc_id
        return result

    response_class.create_cluster = create_cluster

    backend_class: Any = EKSBackend
    original_delete = backend_class.delete_cluster

    def delete_cluster(self: Any, name: str) -> Any:
        cluster = original_delete(self, name)
        group_id = (cluster.resources_vpc_config or {}).get("clusterSecurityGroupId")
        if group_id:
            ec2_backends[self.account_id][self.region_name].delete_security_group(group_id=group_id)
        return cluster

    backend_class.delete_cluster = delete_cluster


def patch_node_group() -> None:
    """8. A node group created without `remoteAccess` comes back with moto's default `{"ec2SshKey": "eksKeypair"}`
    (EKS returns none, and refuses remote access together with a launch template), so the next plan replaces the
    group (`remote_access` forces it).
    9. CreateNodegroup drops `updateConfig` (moto's handler does not pass it on), so the next plan adds the module's
    `update_config { max_unavailable_percentage = 33 }` again.
    10. The node group's Auto Scaling group (`resources.autoScalingGroups`) does not exist in moto's Auto Scaling, so
    the ingress module cannot attach it to its target group. Made from the group's launch template, subnets and
    sizes, as EKS does, and removed with the group."""
    from moto.autoscaling.models import autoscaling_backends
    from moto.eks.models import EKSBackend
    from moto.eks.responses import EKSResponse

    backend_class: Any = EKSBackend
    response_class: Any = EKSResponse
    if getattr(backend_class, "terraform_patched", False):
        return
    backend_class.terraform_patched = True
    original_create = backend_class.create_nodegroup
    original_delete = backend_class.delete_nodegroup

    def create_nodegroup(self: Any, *args: Any, **kwargs: Any) -> Any:
        nodegroup = original_create(self, *args, **kwargs)
        nodegroup.remote_access = kwargs.get("remote_access")
        template = kwargs.get("launch_template")
        if template:
            scaling = nodegroup.scaling_config
            autoscaling: Any = autoscaling_backends[self.account_id][self.region_name]
            autoscaling.create_auto_scaling_group(
                name=nodegroup.resources["autoScalingGroups"][0]["name"],
                availability_zones=[],
                desired_capacity=scaling.get("desiredSize"),
                max_size=scaling.get("maxSize"),
                min_size=scaling.get("minSize"),
                launch_config_name=None,
                launch_template={
                    key: value
                    for key, value in (
                        ("LaunchTemplateId", template.get("id")),
                        ("LaunchTemplateName", None if template.get("id") else template.get("name")),
                        ("Version", template.get("version")),
                    )
                    if value
                },
                vpc_zone_identifier=",".join(nodegroup.subnets),
                default_cooldown=None,
                health_check_period=None,
                health_check_type="EC2",
                load_balancers=[],
                target_group_arns=[],
                placement_group=None,
                termination_policies=[],
                tags=[],
            )
        return nodegroup

    def delete_nodegroup(self: Any, cluster_name: str, nodegroup_name: str) -> Any:
        nodegroup = original_delete(self, cluster_name, nodegroup_name)
        groups = autoscaling_backends[self.account_id][self.region_name].autoscaling_groups
        for group in nodegroup.resources["autoScalingGroups"]:
            if group["name"] in groups:
                autoscaling_backends[self.account_id][self.region_name].delete_auto_scaling_group(group["name"])
        return nodegroup

    original_respond = response_class.create_nodegroup

    def respond_create_nodegroup(self: Any) -> Any:
        result = original_respond(self)
        nodegroup = self.eks_backend.clusters[self._get_param("name")].nodegroups[self._get_param("nodegroupName")]
        nodegroup.update_config = self._get_param("updateConfig")
        return result

    backend_class.create_nodegroup = create_nodegroup
    backend_class.delete_nodegroup = delete_nodegroup
    response_class.create_nodegroup = respond_create_nodegroup


def patch_launch_template() -> None:
    """11. CreateLaunchTemplate's own `TagSpecifications` (resource type `launch-template`: the tags of the template
    itself) are copied into the version's `LaunchTemplateData.TagSpecifications`, which describes the tags of the
    instances and volumes it launches; the provider then reads a `tag_specifications { resource_type =
    "launch-template" }` block the configuration never set and plans to remove it after every apply."""
    from moto.ec2.responses.launch_templates import LaunchTemplates

    response_class: Any = LaunchTemplates
    if getattr(response_class, "terraform_patched", False):
        return
    response_class.terraform_patched = True
    original_create = response_class.create_launch_template

    def create_launch_template(self: Any) -> Any:
        result = original_create(self)
        template = self.ec2_backend.get_launch_template_by_name(self._get_param("LaunchTemplateName"))
        for version in template.versions:
            specifications = version.data.get("TagSpecifications")
            if specifications:
                kept = [item for item in specifications if item.get("ResourceType") != "launch-template"]
                if kept:
                    version.data["TagSpecifications"] = kept
                else:
                    del version.data["TagSpecifications"]
        return result

    response_class.create_launch_template = create_launch_template


def patch_security_group_rule() -> None:
    """12. DescribeSecurityGroupRules answers no `Description` for a rule that references another security group
    (moto reads it only from the CIDR range, not from the group pair it was given with), so the next plan sets the
    ingress module's descriptions of its node-port rules again."""
    from moto.ec2.models.security_groups import SecurityGroupRule

    rule_class: Any = SecurityGroupRule
    if getattr(rule_class, "terraform_patched", False):
        return
    rule_class.terraform_patched = True

    def description(self: Any) -> str | None:
        found: str | None = self.ip_range.get("Description") or self.source_group.get("Description")
        return found

    rule_class.description = property(description)


# The request being served (werkzeug serves each on its own thread): what a bucket policy's conditions read.
_REQUEST = threading.local()


def _request_context(request: Any, full_url: str) -> dict[str, str]:
    """The condition keys of a request that the modules' bucket policies test: aws:SecureTransport and, over TLS,
    s3:TlsVersion (from the connection's negotiated version, e.g. "1.3")."""
    environ = getattr(request, "environ", {}) or {}
    secure = environ.get("wsgi.url_scheme", urlparse(full_url).scheme) == "https"
    context = {"aws:SecureTransport": "true" if secure else "false"}
    connection = environ.get("werkzeug.socket")
    version = connection.version() if secure and connection is not None and hasattr(connection, "version") else None
    if version:
        context["s3:TlsVersion"] = version.removeprefix("TLSv")
    return context


def _matches(patterns: Any, value: str) -> bool:
    return any(
        fnmatch.fnmatchcase(value.lower(), str(p).lower())
        for p in ([patterns] if isinstance(patterns, str) else patterns)
    )


def _condition_holds(operator: str, key: str, expected: Any, context: dict[str, str]) -> bool:
    """One condition as IAM evaluates it: a key the request does not have makes it false (true with ...IfExists)."""
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    if key not in context:
        return if_exists
    actual = context[key]
    values = [str(v) for v in ([expected] if not isinstance(expected, list) else expected)]
    if operator == "Bool":
        return actual.lower() in (v.lower() for v in values)
    if operator == "StringEquals":
        return actual in values
    if operator == "StringNotEquals":
        return actual not in values
    if operator in {"NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals"}:
        compare = {
            "NumericLessThan": float.__lt__,
            "NumericLessThanEquals": float.__le__,
            "NumericGreaterThan": float.__gt__,
            "NumericGreaterThanEquals": float.__ge__,
        }[operator]
        return any(compare(float(actual), float(v)) for v in values)
    raise NotImplementedError(f"bucket policy condition operator {operator} (moto_for_terraform)")


def evaluate_bucket_policy(policy: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> str:
    """ "DENIED", "PERMITTED" or "NEUTRAL" for an anonymous-principal statement set, as S3 does: an explicit Deny
    whose conditions all hold wins, then an Allow whose conditions all hold."""
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    result = "NEUTRAL"
    for statement in statements:
        if "Action" in statement and not _matches(statement["Action"], action):
            continue
        if "NotAction" in statement and _matches(statement["NotAction"], action):
            continue
        if "Resource" in statement and not _matches(statement["Resource"], resource):
            continue
        if statement.get("Principal") not in ("*", {"AWS": "*"}, {"AWS": ["*"]}):
            continue  # a named principal: moto knows no caller to compare (as moto's own evaluation)
        conditions = statement.get("Condition", {})
        if not all(
            _condition_holds(operator, key, expected, context)
            for operator, keys in conditions.items()
            for key, expected in keys.items()
        ):
            continue
        if statement.get("Effect") == "Deny":
            return "DENIED"
        result = "PERMITTED"
    return result


def patch_s3_bucket_policy() -> None:
    """14. moto applies a bucket policy's Deny to every object request whatever its conditions: it evaluates only
    StringEquals and takes any other operator (Bool, NumericLessThan) as true, and it has no request values
    (aws:SecureTransport, s3:TlsVersion) to test. The bucket module's TLS-only policy therefore denies every
    PutObject and GetObject, over TLS too. Evaluated here as S3 does, with the request's transport: served over
    TLS (moto's --ssl-cert/--ssl-key) the policy allows, over plain HTTP it denies, as in AWS."""
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket
    from moto.s3.responses import S3Response

    bucket_class: Any = FakeBucket
    if getattr(bucket_class, "terraform_policy", False):
        return
    response_class: Any = S3Response

    def with_request_context(handler: Any) -> Any:
        """`handler` (moto's bucket or key response) with the request's condition keys kept for get_permission."""

        def handle(self: Any, request: Any, full_url: str, headers: Any) -> Any:
            _REQUEST.context = _request_context(request, full_url)
            try:
                return handler(self, request, full_url, headers)
            finally:
                _REQUEST.context = None

        return handle

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = json.loads(self.policy.decode() if isinstance(self.policy, bytes) else self.policy)
        context = getattr(_REQUEST, "context", None) or {}
        return PermissionResult[evaluate_bucket_policy(policy, action, resource, context)]

    response_class.key_response = with_request_context(response_class.key_response)
    response_class.bucket_response = with_request_context(response_class.bucket_response)
    bucket_class.get_permission = get_permission
    bucket_class.terraform_policy = True


def patch_tls_handshake() -> None:
    """15. Served over TLS, werkzeug does each connection's handshake in its accept loop (the listening socket's
    accept() wraps and handshakes), with no time limit: one client that connects and stalls (seen under load: an
    apply hung on every call for 7 minutes) blocks every other. Here the handshake happens on the connection's own
    thread, at its first read, as OpenSSL does when the accept does not."""
    from werkzeug.serving import BaseWSGIServer

    server_class: Any = BaseWSGIServer
    if getattr(server_class, "terraform_handshake", False):
        return
    original_init = server_class.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if self.ssl_context is not None:
            self.socket.do_handshake_on_connect = False

    server_class.__init__ = __init__
    server_class.terraform_handshake = True


def main(argv: list[str]) -> int:
    patch_sqs()
    patch_athena()
    patch_eks()
    patch_node_group()
    patch_launch_template()
    patch_security_group_rule()
    patch_s3_bucket_policy()
    patch_tls_handshake()
    from moto.server import main as moto_main

    moto_main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
