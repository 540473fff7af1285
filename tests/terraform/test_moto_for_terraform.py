"""The moto patches that Terraform's AWS provider needs (moto_for_terraform.py), on real server processes.

Each moto bug is shown on the plain moto server of the test session (so this fails, and the patch can go, once moto
fixes it), and fixed on the patched server (plain HTTP here, TLS as the Terraform tests run it where TLS matters).
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from devstack.bootstrap import emulator_client
from devstack.emulator import MotoServer
from devstack.processes import LOOPBACK, ManagedProcess, free_port, python_module
from tests.terraform.applied import patched_moto as patched_moto_over_tls
from tests.tooling import REPO_ROOT

TLS_ONLY = {"Version": "2012-10-17", "Statement": [{"Sid": "D", "Effect": "Deny", "Principal": "*", "Action": "sqs:*"}]}


@pytest.fixture(scope="module")
def patched_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = ManagedProcess(
        "moto-for-terraform",
        python_module("tests.terraform.moto_for_terraform", "-H", LOOPBACK, "-p", str(port)),
        log_path=Path(tmp_path_factory.mktemp("moto-tf")) / "moto.log",
        cwd=REPO_ROOT,
    )
    process.start()
    try:
        process.wait_until(f"http://{LOOPBACK}:{port}/moto-api/data.json", timeout=60)
        yield f"http://{LOOPBACK}:{port}"
    finally:
        process.stop(10)


def _queues(endpoint: str) -> tuple[Any, str, str]:
    sqs = emulator_client("sqs", endpoint)
    suffix = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"tf-dlq-{suffix}")["QueueUrl"]
    main = sqs.create_queue(QueueName=f"tf-main-{suffix}")["QueueUrl"]
    return sqs, main, dlq


def _arn(sqs: Any, url: str) -> str:
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return arn


def _attributes(sqs: Any, url: str) -> dict[str, str]:
    attributes: dict[str, str] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return attributes


def _behaviour(endpoint: str) -> dict[str, Any]:
    """What the provider sees after the queue module's calls: policy, redrive allow policy, redrive policy text."""
    sqs, main, dlq = _queues(endpoint)
    sqs.set_queue_attributes(QueueUrl=main, Attributes={"Policy": json.dumps(TLS_ONLY)})
    redrive = {"deadLetterTargetArn": _arn(sqs, dlq), "maxReceiveCount": 5}
    sqs.set_queue_attributes(QueueUrl=main, Attributes={"RedrivePolicy": json.dumps(redrive)})
    allow = json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [_arn(sqs, main)]})
    sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": allow})
    found_allow = _attributes(sqs, dlq).get("RedriveAllowPolicy")
    sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": ""})
    main_attributes = _attributes(sqs, main)
    return {
        "policy kept": "Policy" in main_attributes,
        "allow policy returned": found_allow == allow,
        "allow policy removed": "RedriveAllowPolicy" not in _attributes(sqs, dlq),
        "redrive policy compact": main_attributes.get("RedrivePolicy") == json.dumps(redrive, separators=(",", ":")),
    }


def test_plain_moto_still_has_the_bugs(moto_server: MotoServer) -> None:
    """If this fails, moto fixed one: drop that part of moto_for_terraform.patch_sqs."""
    assert _behaviour(moto_server.endpoint_url) == {
        "policy kept": False,
        "allow policy returned": False,
        "allow policy removed": True,
        "redrive policy compact": False,
    }


def test_patched_moto_behaves_as_sqs(patched_moto: str) -> None:
    assert _behaviour(patched_moto) == {
        "policy kept": True,
        "allow policy returned": True,
        "allow policy removed": True,
        "redrive policy compact": True,
    }


# What the catalog, eks, ingress and email-ingest examples need besides SQS (moto_for_terraform.patch_athena,
# patch_eks, patch_node_group, patch_launch_template, patch_security_group_rule): each entry is True where moto
# behaves as AWS.

NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})
ACCOUNT = "123456789012"
POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminPolicy"


def _client(service: str, endpoint: str) -> Any:
    return emulator_client(service, endpoint, "eu-west-1", config=NO_RETRIES)


def _works(call: Callable[[], object]) -> bool:
    try:
        call()
    except (ClientError, BotoCoreError):
        return False
    return True


def _athena_behaviour(endpoint: str) -> dict[str, bool]:
    athena = _client("athena", endpoint)
    workgroup = f"tf-{uuid.uuid4().hex[:8]}"
    athena.create_work_group(Name=workgroup, Configuration={})
    query = athena.create_named_query(Name="q", Database="d", QueryString="SELECT 1", WorkGroup=workgroup)
    deleted = _works(lambda: athena.delete_named_query(NamedQueryId=query["NamedQueryId"]))
    try:
        athena.get_named_query(NamedQueryId=f"missing-{uuid.uuid4()}")
        missing_is_invalid_request = False
    except ClientError as exc:
        missing_is_invalid_request = exc.response["Error"]["Code"] == "InvalidRequestException"
    return {
        "DeleteNamedQuery": deleted,
        "GetNamedQuery of an unknown ID: InvalidRequestException": missing_is_invalid_request,
    }


def _eks_behaviour(endpoint: str) -> dict[str, bool]:
    ec2, eks = _client("ec2", endpoint), _client("eks", endpoint)
    autoscaling = _client("autoscaling", endpoint)
    suffix = uuid.uuid4().hex[:8]
    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.99.1.0/24")["Subnet"]["SubnetId"]
    role = f"arn:aws:iam::{ACCOUNT}:role/tf-{suffix}"
    name = f"tf-{suffix}"
    access = {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
    eks.create_cluster(name=name, roleArn=role, resourcesVpcConfig={"subnetIds": [subnet]}, accessConfig=access)
    cluster = eks.describe_cluster(name=name)["cluster"]
    group_id = cluster["resourcesVpcConfig"].get("clusterSecurityGroupId")
    template = ec2.create_launch_template(
        LaunchTemplateName=f"tf-{suffix}",
        LaunchTemplateData={"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}]}]},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "a", "Value": "b"}]}],
    )["LaunchTemplate"]
    version = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])
    data_types = [
        item["ResourceType"] for item in version["LaunchTemplateVersions"][0]["LaunchTemplateData"]["TagSpecifications"]
    ]
    nodegroup = eks.create_nodegroup(
        clusterName=name,
        nodegroupName="default",
        nodeRole=role,
        subnets=[subnet],
        scalingConfig={"minSize": 1, "maxSize": 2, "desiredSize": 1},
        launchTemplate={"id": template["LaunchTemplateId"], "version": "1"},
        updateConfig={"maxUnavailablePercentage": 33},
    )["nodegroup"]
    nodegroup = eks.describe_nodegroup(clusterName=name, nodegroupName="default")["nodegroup"]
    asg = nodegroup["resources"]["autoScalingGroups"][0]["name"]
    principal = f"arn:aws:iam::{ACCOUNT}:role/ci/tf-{suffix}"
    eks.create_cluster(name=f"{name}-2", roleArn=role, resourcesVpcConfig={"subnetIds": [subnet]})
    issuers = {eks.describe_cluster(name=each)["cluster"]["identity"]["oidc"]["issuer"] for each in (name, f"{name}-2")}
    nodes = ec2.create_security_group(GroupName=f"nodes-{suffix}", Description="n", VpcId=vpc)["GroupId"]
    alb = ec2.create_security_group(GroupName=f"alb-{suffix}", Description="a", VpcId=vpc)["GroupId"]
    pair = {"GroupId": alb, "Description": "from the load balancer"}
    ec2.authorize_security_group_ingress(
        GroupId=nodes, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "UserIdGroupPairs": [pair]}]
    )
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [nodes]}])["SecurityGroupRules"]
    descriptions = [rule.get("Description") for rule in rules if not rule["IsEgress"]]
    return {
        "a rule referencing a group keeps its description": descriptions == ["from the load balancer"],
        "each cluster its own OIDC issuer": len(issuers) == 2,
        "accessConfig returned": cluster.get("accessConfig") == access,
        "clusterSecurityGroupId is a security group": bool(group_id)
        and _works(lambda: ec2.describe_security_groups(GroupIds=[group_id])),
        "CreateAddon": _works(lambda: eks.create_addon(clusterName=name, addonName="vpc-cni")),
        "CreateAccessEntry": _works(lambda: eks.create_access_entry(clusterName=name, principalArn=principal)),
        "AssociateAccessPolicy": _works(
            lambda: eks.associate_access_policy(
                clusterName=name, principalArn=principal, policyArn=POLICY, accessScope={"type": "cluster"}
            )
        ),
        "node group without remoteAccess has none": "remoteAccess" not in nodegroup,
        "node group keeps updateConfig": nodegroup.get("updateConfig") == {"maxUnavailablePercentage": 33},
        "node group's Auto Scaling group exists": bool(
            autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])["AutoScalingGroups"]
        ),
        "launch template's own tags not in its data": data_types == ["instance"],
    }


def test_plain_moto_still_lacks_what_athena_and_eks_need(moto_server: MotoServer) -> None:
    """If this fails, moto fixed one: drop that part of moto_for_terraform (its docstring names each)."""
    assert _athena_behaviour(moto_server.endpoint_url) == dict.fromkeys(
        ("DeleteNamedQuery", "GetNamedQuery of an unknown ID: InvalidRequestException"), False
    )
    assert _eks_behaviour(moto_server.endpoint_url) == dict.fromkeys(
        (
            "a rule referencing a group keeps its description",
            "each cluster its own OIDC issuer",
            "accessConfig returned",
            "clusterSecurityGroupId is a security group",
            "CreateAddon",
            "CreateAccessEntry",
            "AssociateAccessPolicy",
            "node group without remoteAccess has none",
            "node group keeps updateConfig",
            "node group's Auto Scaling group exists",
            "launch template's own tags not in its data",
        ),
        False,
    )


def test_patched_moto_serves_athena_and_eks_as_aws(patched_moto: str) -> None:
    assert all(_athena_behaviour(patched_moto).values()), _athena_behaviour(patched_moto)
    behaviour = _eks_behaviour(patched_moto)
    assert all(behaviour.values()), behaviour


def test_patched_moto_add_ons_and_access_entries_round_trip(patched_moto: str) -> None:
    """What the provider's create, read and delete of aws_eks_addon, aws_eks_access_entry and
    aws_eks_access_policy_association do, with the waiters' ends (ACTIVE; ResourceNotFoundException once gone)."""
    ec2, eks = _client("ec2", patched_moto), _client("eks", patched_moto)
    suffix = uuid.uuid4().hex[:8]
    vpc = ec2.create_vpc(CidrBlock="10.98.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.98.1.0/24")["Subnet"]["SubnetId"]
    name = f"tf-{suffix}"
    eks.create_cluster(name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/r", resourcesVpcConfig={"subnetIds": [subnet]})
    assert eks.describe_cluster(name=name)["cluster"]["accessConfig"]["authenticationMode"] == "CONFIG_MAP"
    eks.create_addon(clusterName=name, addonName="coredns", addonVersion="v1.11.4-eksbuild.2", tags={"k": "v"})
    addon = eks.describe_addon(clusterName=name, addonName="coredns")["addon"]
    assert (addon["status"], addon["addonVersion"], addon["tags"]) == ("ACTIVE", "v1.11.4-eksbuild.2", {"k": "v"})
    assert eks.list_addons(clusterName=name)["addons"] == ["coredns"]
    eks.delete_addon(clusterName=name, addonName="coredns")
    with pytest.raises(eks.exceptions.ResourceNotFoundException):
        eks.describe_addon(clusterName=name, addonName="coredns")
    principal = f"arn:aws:iam::{ACCOUNT}:role/path/tf-{suffix}"  # slashes and colons in the URL path
    eks.create_access_entry(clusterName=name, principalArn=principal, type="STANDARD")
    assert eks.describe_access_entry(clusterName=name, principalArn=principal)["accessEntry"]["type"] == "STANDARD"
    scope = {"type": "namespace", "namespaces": ["email-ingest"]}
    eks.associate_access_policy(clusterName=name, principalArn=principal, policyArn=POLICY, accessScope=scope)
    policies = eks.list_associated_access_policies(clusterName=name, principalArn=principal)["associatedAccessPolicies"]
    assert [(item["policyArn"], item["accessScope"]) for item in policies] == [(POLICY, scope)]
    eks.disassociate_access_policy(clusterName=name, principalArn=principal, policyArn=POLICY)
    assert (
        eks.list_associated_access_policies(clusterName=name, principalArn=principal)["associatedAccessPolicies"] == []
    )
    eks.delete_access_entry(clusterName=name, principalArn=principal)
    with pytest.raises(eks.exceptions.ResourceNotFoundException):
        eks.describe_access_entry(clusterName=name, principalArn=principal)
    group = eks.describe_cluster(name=name)["cluster"]["resourcesVpcConfig"]["clusterSecurityGroupId"]
    eks.delete_cluster(name=name)
    assert not _works(lambda: ec2.describe_security_groups(GroupIds=[group])), "the cluster security group stays"


# The bucket module's TLS-only policy (modules/bucket/main.tf), for moto_for_terraform.patch_s3_bucket_policy.
def _tls_only_policy(bucket: str) -> dict[str, Any]:
    resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": resources,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "DenyOutdatedTLS",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": resources,
                "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
            },
        ],
    }


def _object_calls_work(s3: Any, policy_statements: slice) -> bool:
    """PutObject and GetObject in a new bucket under (part of) the TLS-only policy."""
    bucket = f"tf-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    policy = _tls_only_policy(bucket)
    policy["Statement"] = policy["Statement"][policy_statements]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    return _works(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"v")) and _works(
        lambda: s3.get_object(Bucket=bucket, Key="k")
    )


def test_plain_moto_denies_every_object_call_under_a_conditional_deny(moto_server: MotoServer) -> None:
    """A Deny on `s3:TlsVersion < 1.2` does not apply to a request without TLS in AWS (the key is absent, so the
    condition is false), yet plain moto denies it: it takes any operator but StringEquals as true. If this fails,
    moto fixed it: drop moto_for_terraform.patch_s3_bucket_policy."""
    assert not _object_calls_work(_client("s3", moto_server.endpoint_url), slice(1, 2))


def test_patched_moto_evaluates_the_tls_only_policy_on_plain_http(patched_moto: str) -> None:
    s3 = _client("s3", patched_moto)
    assert _object_calls_work(s3, slice(1, 2)), "the TLS-version Deny applied to a request without TLS"
    assert not _object_calls_work(s3, slice(0, 2)), "plain HTTP passed the TLS-only policy"


@pytest.mark.integration  # starts moto_for_terraform's server
def test_patched_moto_over_tls_passes_the_tls_only_policy(tmp_path: Path) -> None:
    with patched_moto_over_tls(tmp_path) as moto:
        assert _object_calls_work(moto.client("s3"), slice(0, 2))


@pytest.mark.integration  # starts moto_for_terraform's server
def test_a_stalled_tls_client_does_not_block_the_others(tmp_path: Path) -> None:
    """A client that connects and never starts its TLS handshake (a Go dialer under load did, and an apply hung on
    every call): the next request is still answered (werkzeug alone handshakes in its accept loop and stays stuck)."""
    with patched_moto_over_tls(tmp_path) as moto:
        host, port = moto.endpoint.removeprefix("https://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5):
            context = ssl.create_default_context(cafile=str(moto.ca_bundle))
            with urllib.request.urlopen(f"{moto.endpoint}/moto-api/data.json", timeout=10, context=context) as answer:
                assert answer.status == 200
