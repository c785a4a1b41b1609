// AWS SDK for JavaScript v3 against a CloudStorage S3 endpoint.
// Usage: node s3_smoke.mjs ENDPOINT REGION ACCESS_KEY SECRET_KEY BUCKET
// Exits non-zero (with a message) on the first failed expectation.
import {
  S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, HeadObjectCommand,
  ListObjectsV2Command, DeleteObjectsCommand, CopyObjectCommand, DeleteBucketCommand,
  CreateMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { createHash, randomBytes } from "node:crypto";

const [endpoint, region, accessKeyId, secretAccessKey, Bucket] = process.argv.slice(2);
const s3 = new S3Client({
  endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey },
});
function check(cond, what) { if (!cond) { console.error("FAILED: " + what); process.exit(1); } }
const md5 = (b) => createHash("md5").update(b).digest("hex");

await s3.send(new CreateBucketCommand({ Bucket }));
const body = randomBytes(100000);
const put = await s3.send(new PutObjectCommand({
  Bucket, Key: "js/a.bin", Body: body, ContentType: "application/x-js", Metadata: { lang: "js" },
}));
check(put.ETag === `"${md5(body)}"`, "PutObject ETag");
const got = await s3.send(new GetObjectCommand({ Bucket, Key: "js/a.bin" }));
const bytes = Buffer.from(await got.Body.transformToByteArray());
check(bytes.equals(body), "GetObject body");
check(got.Metadata.lang === "js" && got.ContentType === "application/x-js", "metadata");
const ranged = await s3.send(new GetObjectCommand({ Bucket, Key: "js/a.bin", Range: "bytes=10-19" }));
check(Buffer.from(await ranged.Body.transformToByteArray()).equals(body.subarray(10, 20)), "range");
await s3.send(new CopyObjectCommand({ Bucket, Key: "js/b.bin", CopySource: `${Bucket}/js/a.bin` }));
const head = await s3.send(new HeadObjectCommand({ Bucket, Key: "js/b.bin" }));
check(head.ContentLength === body.length, "copy");

const part1 = randomBytes(5 * 1024 * 1024), part2 = Buffer.from("tail");
const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: "js/m.bin" }));
const p1 = await s3.send(new UploadPartCommand({ Bucket, Key: "js/m.bin", UploadId, PartNumber: 1, Body: part1 }));
const p2 = await s3.send(new UploadPartCommand({ Bucket, Key: "js/m.bin", UploadId, PartNumber: 2, Body: part2 }));
await s3.send(new CompleteMultipartUploadCommand({
  Bucket, Key: "js/m.bin", UploadId,
  MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.ETag }] },
}));
const m = await s3.send(new GetObjectCommand({ Bucket, Key: "js/m.bin" }));
check(Buffer.from(await m.Body.transformToByteArray()).equals(Buffer.concat([part1, part2])), "multipart");

const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket, Key: "js/a.bin" }), { expiresIn: 600 });
const fetched = Buffer.from(await (await fetch(url)).arrayBuffer());
check(fetched.equals(body), "presigned GET");

const list = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: "js/", MaxKeys: 2 }));
check(list.IsTruncated && list.Contents.length === 2, "list page");
const rest = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: "js/", ContinuationToken: list.NextContinuationToken }));
check(rest.Contents.length === 1 && !rest.IsTruncated, "list continuation");
const del = await s3.send(new DeleteObjectsCommand({
  Bucket, Delete: { Objects: [{ Key: "js/a.bin" }, { Key: "js/b.bin" }, { Key: "js/m.bin" }] },
}));
check(del.Deleted.length === 3, "DeleteObjects");
await s3.send(new DeleteBucketCommand({ Bucket }));
try {
  await s3.send(new HeadObjectCommand({ Bucket, Key: "js/a.bin" }));
  check(false, "bucket should be gone");
} catch (err) {
  check(err.$metadata.httpStatusCode === 404, "404 after delete: " + err.name);
}
console.log("js sdk ok");
