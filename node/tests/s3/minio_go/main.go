// A client of FileGrid's S3 API built on MinIO's Go SDK (minio-go v7), which signs each
// chunk of a body it uploads over plain HTTP (STREAMING-AWS4-HMAC-SHA256-PAYLOAD). It puts,
// reads back, lists and deletes objects and checks every byte; it exits non-zero on the
// first difference. Usage: minio_go ENDPOINT ACCESS_KEY SECRET TRACE_FILE
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 5 {
		fail("usage: minio_go ENDPOINT ACCESS_KEY SECRET TRACE_FILE")
	}
	ctx := context.Background()
	c, err := minio.New(os.Args[1], &minio.Options{
		Creds:  credentials.NewStaticV4(os.Args[2], os.Args[3], ""),
		Secure: false,
		Region: "us-east-1",
	})
	if err != nil {
		fail("client: %v", err)
	}
	trace, err := os.Create(os.Args[4])
	if err != nil {
		fail("trace file: %v", err)
	}
	defer trace.Close()
	c.TraceOn(trace)

	const bucket = "minio-go"
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		fail("make bucket: %v", err)
	}
	// Sizes around the SDK's 64 KiB signed chunks, and one over its 16 MiB multipart
	// threshold for a body of unknown size.
	for _, size := range []int64{0, 1, 65536, 65537, 3<<20 + 11} {
		body := make([]byte, size)
		rand.Read(body)
		key := fmt.Sprintf("sized/%d", size)
		info, err := c.PutObject(ctx, bucket, key, bytes.NewReader(body), size,
			minio.PutObjectOptions{ContentType: "application/x-test", UserMetadata: map[string]string{"size": fmt.Sprint(size)}})
		if err != nil {
			fail("put %s: %v", key, err)
		}
		if info.Size != size {
			fail("put %s: size %d", key, info.Size)
		}
		checkRead(ctx, c, bucket, key, body)
		st, err := c.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
		if err != nil {
			fail("stat %s: %v", key, err)
		}
		if st.Size != size || st.ContentType != "application/x-test" || st.UserMetadata["Size"] != fmt.Sprint(size) {
			fail("stat %s: %+v", key, st)
		}
	}
	big := make([]byte, 17<<20+5)
	rand.Read(big)
	if _, err := c.PutObject(ctx, bucket, "unknown-size", bytes.NewReader(big), -1,
		minio.PutObjectOptions{PartSize: 5 << 20}); err != nil {
		fail("put of unknown size: %v", err)
	}
	checkRead(ctx, c, bucket, "unknown-size", big)

	n := 0
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			fail("list: %v", o.Err)
		}
		n++
	}
	if n != 6 {
		fail("list: %d objects, want 6", n)
	}
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if err := c.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{}); err != nil {
			fail("remove %s: %v", o.Key, err)
		}
	}
	if err := c.RemoveBucket(ctx, bucket); err != nil {
		fail("remove bucket: %v", err)
	}

	// A wrong secret is refused.
	bad, _ := minio.New(os.Args[1], &minio.Options{
		Creds: credentials.NewStaticV4(os.Args[2], "wrong-secret", ""), Region: "us-east-1"})
	_, err = bad.PutObject(ctx, bucket, "x", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{})
	if minio.ToErrorResponse(err).Code != "SignatureDoesNotMatch" {
		fail("a wrong secret: %v", err)
	}
	fmt.Println("ok")
}

func checkRead(ctx context.Context, c *minio.Client, bucket, key string, want []byte) {
	o, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		fail("get %s: %v", key, err)
	}
	got, err := io.ReadAll(o)
	if err != nil {
		fail("get %s: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		fail("get %s: %d bytes read back, %d written, or different", key, len(got), len(want))
	}
}
